// Configuration: environment + `.env` + generated secrets, validated once into a
// frozen, typed object. This is the only module that reads `process.env`.
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism, userInfo } from 'node:os'
import path from 'node:path'
import { parseEnv } from 'node:util'
import { Cron } from 'croner'
import type { DatabaseConfig } from './db/dialect.js'

export type SameSite = 'lax' | 'strict' | 'none'
export type AccessTokenAlgorithm = 'EdDSA' | 'ES256' | 'HS256'
export type TrustProxy = boolean | number | string[]

export interface Config {
  readonly port: number
  readonly host: string
  readonly dataDir: string
  /** The generated-secrets file in DATA_DIR, when a secret is not given in the environment (SQLite only). */
  readonly secretsFile: SecretsFile | undefined
  /** The embedded SQLite file (the default) or PostgreSQL, from DATABASE_URL. */
  readonly database: DatabaseConfig
  /** Shares rate limits and failed-login counters between instances. */
  readonly redisUrl: string | undefined
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  readonly trustProxy: TrustProxy
  readonly bodyLimit: number
  /** HTTP timeouts, in seconds: the whole request (headers and body) must arrive within
   *  `requestTimeout`, its headers within `headersTimeout`; a connection with no traffic
   *  either way is closed after `connectionTimeout`, an idle keep-alive one after `keepAliveTimeout`. */
  readonly requestTimeout: number
  readonly headersTimeout: number
  readonly connectionTimeout: number
  readonly keepAliveTimeout: number
  readonly jwtSecret: string
  readonly cookieSecret: string
  readonly dataEncryptionKey: string
  readonly jwtIssuer: string
  /** Algorithm of access tokens: asymmetric keys in the database (EdDSA, ES256), or HS256 from JWT_SECRET. */
  readonly jwtAlgorithm: AccessTokenAlgorithm
  /** `aud` of access tokens, required on verification when set. */
  readonly jwtAudience: string | undefined
  /** Automatic signing-key rotation period in seconds; undefined: off (rotate with `latchkey keys rotate`). */
  readonly jwtKeyRotation: number | undefined
  /** Client credentials of `POST /auth/introspect`; undefined: the route is off (404). */
  readonly introspectionClient: { readonly id: string; readonly secret: string } | undefined
  /** Durations in seconds. */
  readonly accessTokenTtl: number
  readonly refreshTokenTtl: number
  readonly passwordConfirmationTtl: number
  readonly sessionMaxAge: number
  readonly refreshReuseGrace: number
  readonly maxSessionsPerUser: number
  readonly autoRefresh: boolean
  readonly cookieSecure: boolean
  readonly cookieDomain: string | undefined
  /** `undefined`: the contract's defaults (lax for access, strict for refresh). */
  readonly cookieSameSite: SameSite | undefined
  readonly corsAllowedOrigins: readonly string[]
  readonly rateLimitMax: number
  readonly authRateLimitMax: number
  readonly cleanupCron: string
  readonly publicAccountPage: boolean
  readonly argon2MemoryKib: number
  readonly argon2TimeCost: number
  readonly argon2Parallelism: number
  /** Concurrent argon2 computations; more only queue on the thread pool. */
  readonly hashConcurrency: number
  /** Password checks that may wait for a hashing slot; more get 503 SERVER_BUSY. */
  readonly hashQueueMax: number
  /** SMTP server of outgoing mail (`smtp://` or `smtps://`, may hold credentials); undefined: .eml files in <dataDir>/outbox. */
  readonly smtpUrl: string | undefined
  /** Sender of every mail (`Name <address>` or an address). */
  readonly mailFrom: string
  /** The account page that mailed links open (the token travels in the URL fragment). */
  readonly publicUrl: string
  /** WebAuthn relying party: the RP ID (a host name) passkeys are bound to. */
  readonly webauthnRpId: string
  /** Page origins allowed to run passkey ceremonies (on localhost, the request's own localhost origin too). */
  readonly webauthnOrigins: readonly string[]
  /** Login and refresh answer 403 EMAIL_NOT_VERIFIED until the address is verified; an email change waits for the new address's confirmation. */
  readonly requireEmailVerification: boolean
  /** POST /auth/sign-in-link and its confirmation exist. */
  readonly signInLinks: boolean
  /** Lifetimes of mailed tokens, in seconds (email change uses the verification one). */
  readonly emailVerificationTokenTtl: number
  readonly passwordResetTokenTtl: number
  readonly signInLinkTokenTtl: number
  /** Link mails (reset, sign-in link, verification) one address may be sent per hour. */
  readonly mailRateLimitMax: number
  /** Bearer token of GET /metrics; undefined: metrics are off (404) and nothing is recorded. */
  readonly metricsToken: string | undefined
  /** How long security events are kept, in seconds. */
  readonly securityEventRetention: number
  /** Scheduled SQLite backups: undefined cron means off. */
  readonly backup: { readonly cron: string | undefined; readonly dir: string; readonly keep: number }
}

/** A bad configuration value; the message is one line naming the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable}: ${detail}`)
    this.name = 'ConfigError'
  }
}

export const SECRETS_FILE = 'secrets.json'
const GENERATED_SECRETS = ['JWT_SECRET', 'COOKIE_SECRET', 'DATA_ENCRYPTION_KEY'] as const
const MIN_SECRET_BYTES = 32

const ACCESS_TOKEN_ALGORITHMS: readonly AccessTokenAlgorithm[] = ['EdDSA', 'ES256', 'HS256']
/** Shortest JWT_KEY_ROTATION: a rotation takes a JWKS cache lifetime plus an access-token lifetime to finish. */
const MIN_KEY_ROTATION_SECONDS = 3600

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

/** Parses `30s`, `15m`, `12h`, `7d` or a plain number of seconds; `undefined` if invalid. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d{1,9})([smhd]?)$/.exec(value.trim())
  if (!match) return undefined
  const seconds = Number(match[1]) * (DURATION_UNITS[match[2] || 's'] ?? 1)
  return seconds > 0 ? seconds : undefined
}

type Env = Record<string, string | undefined>

class Reader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name]
    return value === undefined || value.trim() === '' ? undefined : value.trim()
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallback
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new ConfigError(name, `"${value}" is not an integer between ${min} and ${max}`)
    }
    return Number(value)
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (['true', '1', 'yes', 'on'].includes(value)) return true
    if (['false', '0', 'no', 'off'].includes(value)) return false
    throw new ConfigError(name, `"${value}" is not a boolean (use true or false)`)
  }

  duration(name: string, fallback: string): number {
    const value = this.raw(name) ?? fallback
    const seconds = parseDuration(value)
    if (seconds === undefined) {
      throw new ConfigError(name, `"${value}" is not a duration (use 30s, 15m, 12h, 7d or a number of seconds)`)
    }
    return seconds
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T
  oneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined
  oneOf<T extends string>(name: string, allowed: readonly T[], fallback?: T): T | undefined {
    const value = this.raw(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(name, `"${value}" is not one of ${allowed.join(', ')}`)
    }
    return value as T
  }
}

function parseTrustProxy(reader: Reader): TrustProxy {
  const value = reader.raw('TRUST_PROXY')
  if (value === undefined || ['false', '0', 'off', 'no'].includes(value.toLowerCase())) return false
  if (value.toLowerCase() === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  const entries = value.split(',').map((entry) => entry.trim())
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/')
    const family = isIP(address ?? '')
    const prefixOk = prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32))
    if (family === 0 || !prefixOk || extra !== undefined) {
      throw new ConfigError('TRUST_PROXY', `"${entry}" is not true, a hop count or an IP address/CIDR`)
    }
  }
  return entries
}

function parseOrigins(reader: Reader): string[] {
  const value = reader.raw('CORS_ALLOWED_ORIGIN')
  if (value === undefined) return []
  return value.split(',').map((entry) => {
    const origin = entry.trim()
    let parsed: URL | undefined
    try {
      parsed = new URL(origin)
    } catch {
      parsed = undefined
    }
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin.replace(/\/$/, '')) {
      throw new ConfigError('CORS_ALLOWED_ORIGIN', `"${origin}" is not an origin like https://app.example.com`)
    }
    return parsed.origin
  })
}

function parseJwtAlgorithm(read: Reader): AccessTokenAlgorithm {
  const value = read.raw('JWT_ALGORITHM')
  if (value === undefined) return 'EdDSA'
  // JOSE names are case-sensitive; accept any case and use the canonical one.
  const algorithm = ACCESS_TOKEN_ALGORITHMS.find((name) => name.toLowerCase() === value.toLowerCase())
  if (!algorithm)
    throw new ConfigError('JWT_ALGORITHM', `"${value}" is not one of ${ACCESS_TOKEN_ALGORITHMS.join(', ')}`)
  return algorithm
}

function parseKeyRotation(read: Reader): number | undefined {
  const value = read.raw('JWT_KEY_ROTATION')
  if (value === undefined || ['off', 'false', 'no', '0'].includes(value.toLowerCase())) return undefined
  const seconds = read.duration('JWT_KEY_ROTATION', value)
  if (seconds < MIN_KEY_ROTATION_SECONDS) {
    throw new ConfigError('JWT_KEY_ROTATION', `"${value}" is shorter than 1h (use off, or a duration like 30d)`)
  }
  return seconds
}

/** SMTP_URL (or SMTP_URL_FILE, as it may hold a password): smtp:// or smtps:// with a host. */
function parseSmtpUrl(read: Reader, cwd: string): string | undefined {
  const value = secretFromEnvironment(read, cwd, 'SMTP_URL')
  if (value === undefined) return undefined
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {
    url = undefined
  }
  // The value may hold a password: the message never repeats it.
  if (!url || !['smtp:', 'smtps:'].includes(url.protocol) || url.hostname === '') {
    throw new ConfigError('SMTP_URL', 'is not a URL like smtp://host:587 or smtps://user:password@host:465')
  }
  return value
}

/** PUBLIC_URL: where mailed links point, the account page; http(s), no fragment (the token goes there). */
function parsePublicUrl(read: Reader, port: number): string {
  const value = read.string('PUBLIC_URL', `http://localhost:${port}/`)
  let url: URL | undefined
  try {
    url = new URL(value)
  } catch {
    url = undefined
  }
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.hash !== '' || value.includes('#')) {
    throw new ConfigError(
      'PUBLIC_URL',
      `"${value}" is not an http(s) URL without a fragment, like https://auth.example.com/`,
    )
  }
  return url.toString()
}

/**
 * WEBAUTHN_RP_ID (default: PUBLIC_URL's host name) and WEBAUTHN_ORIGINS (comma
 * separated; default: PUBLIC_URL's origin). Every origin must be on the RP ID
 * or one of its subdomains, as browsers require; listed ones must be https but
 * on localhost.
 */
function parseWebAuthn(read: Reader, publicUrl: string): { webauthnRpId: string; webauthnOrigins: string[] } {
  const publicOrigin = new URL(publicUrl)
  const rpId = (read.raw('WEBAUTHN_RP_ID') ?? publicOrigin.hostname).toLowerCase()
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(rpId) || rpId.length > 253) {
    throw new ConfigError('WEBAUTHN_RP_ID', `"${rpId}" is not a host name like example.com (no scheme, no port)`)
  }
  const listed = read.raw('WEBAUTHN_ORIGINS')
  const origins = listed === undefined ? [publicOrigin.origin] : listed.split(',').map((entry) => entry.trim())
  return {
    webauthnRpId: rpId,
    webauthnOrigins: origins.map((origin) => {
      let parsed: URL | undefined
      try {
        parsed = new URL(origin)
      } catch {
        parsed = undefined
      }
      const variable = listed === undefined ? 'PUBLIC_URL' : 'WEBAUTHN_ORIGINS'
      if (!parsed || parsed.origin !== origin.replace(/\/$/, '')) {
        throw new ConfigError(variable, `"${origin}" is not an origin like https://app.example.com`)
      }
      const host = parsed.hostname
      if (host !== rpId && !host.endsWith(`.${rpId}`)) {
        throw new ConfigError(variable, `${parsed.origin} is not on WEBAUTHN_RP_ID ${rpId} or a subdomain of it`)
      }
      // PUBLIC_URL may be plain http (a first try on a VM): the server starts, and browsers refuse passkeys there.
      const local = host === 'localhost' || host.endsWith('.localhost')
      if (listed !== undefined && parsed.protocol !== 'https:' && !local) {
        throw new ConfigError(variable, `${parsed.origin}: passkeys need https (or localhost)`)
      }
      return parsed.origin
    }),
  }
}

function parseMailFrom(read: Reader, publicUrl: string): string {
  const value = read.string('MAIL_FROM', `latchkey <noreply@${new URL(publicUrl).hostname}>`)
  if (/[\r\n]/.test(value) || !/^([^<>]*<[^<>\s@]+@[^<>\s@]+>|[^<>\s@]+@[^<>\s@]+)$/.test(value)) {
    throw new ConfigError('MAIL_FROM', `"${value}" is not an address like "latchkey <noreply@example.com>"`)
  }
  return value
}

/**
 * DATABASE_URL: `postgres://` or `postgresql://` selects PostgreSQL; a path,
 * `file:` or `sqlite:` the embedded SQLite file; any other scheme is refused
 * (rather than taken for a file name).
 */
function parseDatabase(read: Reader, cwd: string, dataDir: string): DatabaseConfig {
  const url = read.raw('DATABASE_URL')
  const busyTimeoutMs = read.duration('DATABASE_BUSY_TIMEOUT', '5s') * 1000
  if (url === undefined) return { kind: 'sqlite', file: path.join(dataDir, 'latchkey.db'), busyTimeoutMs }
  if (/^postgres(ql)?:\/\//i.test(url)) {
    return { kind: 'postgres', url, poolMax: read.int('DATABASE_POOL_MAX', 10, 1, 1000) }
  }
  const sqlitePrefix = /^(sqlite|file):(\/\/)?/i
  if (!sqlitePrefix.test(url) && /^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new ConfigError('DATABASE_URL', 'use postgres://..., postgresql://..., a file path, file: or sqlite:')
  }
  return { kind: 'sqlite', file: path.resolve(cwd, url.replace(sqlitePrefix, '')), busyTimeoutMs }
}

function checkSecret(name: string, value: string): string {
  if (Buffer.byteLength(value, 'utf8') < MIN_SECRET_BYTES) {
    throw new ConfigError(name, `must be at least ${MIN_SECRET_BYTES} bytes long`)
  }
  return value
}

/** A secret from NAME, or else from the file NAME_FILE names (Docker and systemd credentials). */
function secretFromEnvironment(read: Reader, cwd: string, name: string): string | undefined {
  const value = read.raw(name)
  if (value !== undefined) return value
  const file = read.raw(`${name}_FILE`)
  if (file === undefined) return undefined
  try {
    return readFileSync(path.resolve(cwd, file), 'utf8').trim()
  } catch (error) {
    throw new ConfigError(`${name}_FILE`, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code}`)
  }
}

/** The generated-secrets file in DATA_DIR: where it is and what this start did with it. */
export interface SecretsFile {
  readonly path: string
  /** It existed before this start, so a database was made with these secrets. */
  readonly existed: boolean
  /**
   * Secrets this start generated because the file (or the file itself) was missing. New secrets suit a new
   * database only: tokens and secret messages made under the old ones could no longer be read.
   */
  readonly generated: readonly string[]
  /**
   * The generated secrets are not written yet: a database file exists, so the database plugin writes them
   * (`saveGeneratedSecrets`) once it has found the database without accounts, and refuses to start otherwise.
   * Without a database file they are written at once.
   */
  readonly pending: boolean
}

/** What a pending secrets file will hold. Kept out of Config, which is a plain object a caller might log. */
const pendingSecrets = new WeakMap<SecretsFile, Record<string, unknown>>()

/** The user this process runs as, for messages about file permissions: `name (uid N)`. */
export function processUser(): string {
  let name = 'unknown'
  try {
    name = userInfo().username
  } catch {
    // No passwd entry for this uid (a container's arbitrary user).
  }
  const uid = process.getuid?.()
  return uid === undefined ? name : `${name} (uid ${uid})`
}

const errorCode = (error: unknown): string =>
  String((error as NodeJS.ErrnoException).code ?? (error as Error).message ?? error)

/**
 * Reads the secrets file in `dataDir` (SQLite: PostgreSQL takes every secret
 * from the environment) and generates the secrets it lacks. They are written
 * at once (see writeSecretsFile) only when there is no database file yet;
 * else they stay pending until the database is known to be new.
 */
function loadGeneratedSecrets(
  dataDir: string,
  databaseFile: string | undefined,
): { secrets: Record<string, string>; file: SecretsFile } {
  const file = path.join(dataDir, SECRETS_FILE)
  let text: string | undefined
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    // Only a file that is not there may be created: one that cannot be read
    // (wrong owner or mode) still holds the keys the data depends on.
    if (errorCode(error) !== 'ENOENT') {
      throw new ConfigError(
        'DATA_DIR',
        `cannot read ${file}: ${errorCode(error)} as user ${processUser()}; give that user read access to it (do not replace it: tokens and secret messages depend on it)`,
      )
    }
  }
  let secrets: Record<string, unknown> = {}
  if (text !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new ConfigError('DATA_DIR', `${file} is not valid JSON; restore it from a backup`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError('DATA_DIR', `${file} does not hold the generated secrets; restore it from a backup`)
    }
    secrets = parsed as Record<string, unknown>
  }
  const generated = GENERATED_SECRETS.filter((name) => typeof secrets[name] !== 'string')
  for (const name of generated) secrets[name] = randomBytes(32).toString('base64url')
  const pending = generated.length > 0 && (databaseFile === undefined || existsSync(databaseFile))
  const state: SecretsFile = Object.freeze({ path: file, existed: text !== undefined, generated, pending })
  if (pending) pendingSecrets.set(state, secrets)
  else if (generated.length > 0) writeSecretsFile(file, secrets)
  return { secrets: secrets as Record<string, string>, file: state }
}

/** Writes the secrets that loadConfig left pending; the database plugin calls it once it has found the database new. */
export function saveGeneratedSecrets(file: SecretsFile): void {
  const secrets = pendingSecrets.get(file)
  if (secrets === undefined) return
  writeSecretsFile(file.path, secrets)
  pendingSecrets.delete(file)
}

/**
 * Atomic and durable: a temporary file made 0600 whatever the umask, synced,
 * renamed over the old one, then the directory synced, so a crash leaves the
 * old file or the new one, never a part of either.
 */
function writeSecretsFile(file: string, secrets: Record<string, unknown>): void {
  const temporary = `${file}.${process.pid}.tmp`
  try {
    rmSync(temporary, { force: true })
    const fd = openSync(temporary, 'wx', 0o600)
    try {
      fchmodSync(fd, 0o600)
      writeFileSync(fd, `${JSON.stringify(secrets, null, 2)}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temporary, file)
    const directory = openSync(path.dirname(file), 'r')
    try {
      fsyncSync(directory)
    } finally {
      closeSync(directory)
    }
  } catch (error) {
    try {
      rmSync(temporary, { force: true })
    } catch {
      // Nothing more to undo.
    }
    throw new ConfigError(
      'DATA_DIR',
      `cannot write ${file}: ${errorCode(error)} as user ${processUser()}; DATA_DIR must be writable by that user and its disk not full`,
    )
  }
}

function readDotEnv(cwd: string): Env {
  const file = path.join(cwd, '.env')
  if (!existsSync(file)) return {}
  return parseEnv(readFileSync(file, 'utf8'))
}

export interface LoadConfigOptions {
  /** Environment to read; defaults to `process.env`. */
  env?: Env
  /** Directory holding `.env` and the relative default `DATA_DIR`; defaults to `process.cwd()`. */
  cwd?: string
}

/**
 * Where the single binary unpacks its native addons and static files:
 * `LATCHKEY_NATIVE_CACHE_DIR`, else `$XDG_CACHE_HOME/latchkey`, else
 * `$HOME/.cache/latchkey` (if `$HOME` exists), else `<DATA_DIR>/cache`.
 * Apart from `Config` because the binary needs it before `loadConfig` runs:
 * its modules load the addons as they load (scripts/binary/main.ts).
 */
export function nativeCacheDir(options: LoadConfigOptions = {}): string {
  const cwd = options.cwd ?? process.cwd()
  const read = new Reader({ ...readDotEnv(cwd), ...(options.env ?? process.env) })
  const configured = read.raw('LATCHKEY_NATIVE_CACHE_DIR')
  if (configured !== undefined) return path.resolve(cwd, configured)
  // The XDG spec says to ignore relative paths.
  const xdgCacheHome = read.raw('XDG_CACHE_HOME')
  if (xdgCacheHome !== undefined && path.isAbsolute(xdgCacheHome)) return path.join(xdgCacheHome, 'latchkey')
  // A system user's HOME may not exist (/nonexistent): then the data directory.
  const home = read.raw('HOME')
  if (home !== undefined && path.isAbsolute(home) && existsSync(home)) return path.join(home, '.cache', 'latchkey')
  return path.join(path.resolve(cwd, read.string('DATA_DIR', './data')), 'cache')
}

/** Builds the configuration; throws `ConfigError` naming the first bad variable. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const cwd = options.cwd ?? process.cwd()
  // Variables in the real environment win over `.env`.
  const env: Env = { ...readDotEnv(cwd), ...(options.env ?? process.env) }
  const read = new Reader(env)

  const port = read.int('PORT', 3000, 0, 65535)
  const dataDir = path.resolve(cwd, read.string('DATA_DIR', './data'))
  const database = parseDatabase(read, cwd, dataDir)
  const redisUrl = read.raw('REDIS_URL')
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://')
  }

  const accessTokenTtl = read.duration('JWT_ACCESS_TOKEN_DURATION', '15m')
  const refreshTokenTtl = read.duration('JWT_REFRESH_TOKEN_DURATION', '7d')
  const passwordConfirmationTtl = read.duration('JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION', '5m')
  const sessionMaxAge = read.duration('SESSION_MAX_AGE', '30d')
  const refreshReuseGrace = read.duration('REFRESH_REUSE_GRACE', '10s')

  const cookieSecure = read.bool('COOKIE_SECURE', true)
  const cookieSameSite = read.oneOf('COOKIE_SAMESITE', ['lax', 'strict', 'none'] as const)
  if (cookieSameSite === 'none' && !cookieSecure) {
    throw new ConfigError('COOKIE_SAMESITE', '"none" needs Secure cookies (unset COOKIE_SECURE=false)')
  }

  const cleanupCron = read.string('CLEANUP_CRON', '0 3 */3 * *')
  try {
    new Cron(cleanupCron, { paused: true }).stop()
  } catch {
    throw new ConfigError('CLEANUP_CRON', `"${cleanupCron}" is not a cron expression (5 or 6 fields)`)
  }

  const logLevel = read.oneOf(
    'LOG_LEVEL',
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
    'info',
  )
  const trustProxy = parseTrustProxy(read)
  const corsAllowedOrigins = parseOrigins(read)
  const cookieDomain = read.raw('COOKIE_DOMAIN')
  if (
    cookieDomain !== undefined &&
    !/^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(cookieDomain)
  ) {
    throw new ConfigError('COOKIE_DOMAIN', `"${cookieDomain}" is not a domain name`)
  }

  // Slow clients (slowloris, a trickled body) must not hold a connection for ever.
  const requestTimeout = read.duration('REQUEST_TIMEOUT', '30s')
  const headersTimeout = read.duration('HEADERS_TIMEOUT', `${Math.min(10, requestTimeout)}s`)
  if (headersTimeout > requestTimeout) {
    throw new ConfigError('HEADERS_TIMEOUT', `must not be longer than REQUEST_TIMEOUT (${requestTimeout}s)`)
  }

  const rest = {
    port,
    host: read.string('HOST', '0.0.0.0'),
    logLevel,
    trustProxy,
    bodyLimit: read.int('BODY_LIMIT', 16 * 1024, 1024, 10 * 1024 * 1024),
    requestTimeout,
    headersTimeout,
    connectionTimeout: read.duration('CONNECTION_TIMEOUT', '60s'),
    // Longer than the idle timeout of common load balancers (60 s), as Fastify's default.
    keepAliveTimeout: read.duration('KEEP_ALIVE_TIMEOUT', '72s'),
    jwtIssuer: read.string('JWT_ISSUER', 'latchkey'),
    jwtAlgorithm: parseJwtAlgorithm(read),
    jwtAudience: read.raw('JWT_AUDIENCE'),
    jwtKeyRotation: parseKeyRotation(read),
    accessTokenTtl,
    refreshTokenTtl,
    passwordConfirmationTtl,
    sessionMaxAge,
    refreshReuseGrace,
    maxSessionsPerUser: read.int('MAX_SESSIONS_PER_USER', 100, 1, 100_000),
    autoRefresh: read.bool('AUTO_REFRESH', false),
    cookieSecure,
    cookieDomain,
    cookieSameSite,
    corsAllowedOrigins,
    rateLimitMax: read.int('RATE_LIMIT_MAX', 300, 1, 10_000_000),
    authRateLimitMax: read.int('AUTH_RATE_LIMIT_MAX', 10, 1, 10_000_000),
    cleanupCron,
    publicAccountPage: read.bool('PUBLIC_ACCOUNT_PAGE', true),
    argon2MemoryKib: read.int('ARGON2_MEMORY_KIB', 19456, 8, 4 * 1024 * 1024),
    argon2TimeCost: read.int('ARGON2_TIME_COST', 2, 1, 100),
    argon2Parallelism: read.int('ARGON2_PARALLELISM', 1, 1, 64),
    // One core is left to the event loop, so a login flood cannot slow every
    // other request (token checks, data) down with it.
    hashConcurrency: read.int('HASH_CONCURRENCY', Math.max(1, availableParallelism() - 1), 1, 256),
    hashQueueMax: read.int('HASH_QUEUE_MAX', 32, 0, 100_000),
  }

  // Secrets given in the environment (or in a file that NAME_FILE names) win
  // over the generated file. Validate those first, so a bad one is reported
  // before anything is written to disk.
  const given = Object.fromEntries(
    GENERATED_SECRETS.flatMap((name) => {
      const value = secretFromEnvironment(read, cwd, name)
      return value === undefined ? [] : [[name, checkSecret(name, value)]]
    }),
  )
  const missing = GENERATED_SECRETS.filter((name) => given[name] === undefined)
  if (database.kind === 'postgres' && missing.length > 0) {
    // Each instance would generate its own: a token from one would fail on another.
    throw new ConfigError(
      missing[0] as string,
      `must be set in the environment (or ${missing[0]}_FILE) with PostgreSQL, the same for every instance; missing: ${missing.join(', ')}`,
    )
  }
  let generated: Record<string, string> = {}
  let secretsFile: SecretsFile | undefined
  if (missing.length > 0) {
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    } catch (error) {
      throw new ConfigError('DATA_DIR', `cannot create ${dataDir}: ${errorCode(error)} as user ${processUser()}`)
    }
    const loaded = loadGeneratedSecrets(dataDir, database.kind === 'sqlite' ? database.file : undefined)
    generated = loaded.secrets
    secretsFile = loaded.file
  }
  const secret = (name: (typeof GENERATED_SECRETS)[number]): string =>
    given[name] ?? checkSecret(name, generated[name] ?? '')

  // Introspection is off unless both are set; the secret is checked like the others.
  const introspectionId = read.raw('INTROSPECTION_CLIENT_ID')
  const introspectionSecret = secretFromEnvironment(read, cwd, 'INTROSPECTION_CLIENT_SECRET')
  if ((introspectionId === undefined) !== (introspectionSecret === undefined)) {
    throw new ConfigError(
      introspectionId === undefined ? 'INTROSPECTION_CLIENT_ID' : 'INTROSPECTION_CLIENT_SECRET',
      'set both INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET, or neither',
    )
  }
  if (introspectionId !== undefined && /[:\s]/.test(introspectionId)) {
    throw new ConfigError('INTROSPECTION_CLIENT_ID', 'must not contain ":" or spaces')
  }
  const introspectionClient =
    introspectionId !== undefined && introspectionSecret !== undefined
      ? Object.freeze({ id: introspectionId, secret: checkSecret('INTROSPECTION_CLIENT_SECRET', introspectionSecret) })
      : undefined

  const publicUrl = parsePublicUrl(read, port)
  const mail = {
    smtpUrl: parseSmtpUrl(read, cwd),
    mailFrom: parseMailFrom(read, publicUrl),
    publicUrl,
    ...parseWebAuthn(read, publicUrl),
    requireEmailVerification: read.bool('REQUIRE_EMAIL_VERIFICATION', false),
    signInLinks: read.bool('SIGN_IN_LINKS', true),
    emailVerificationTokenTtl: read.duration('EMAIL_VERIFICATION_TOKEN_DURATION', '24h'),
    passwordResetTokenTtl: read.duration('PASSWORD_RESET_TOKEN_DURATION', '30m'),
    signInLinkTokenTtl: read.duration('SIGN_IN_LINK_TOKEN_DURATION', '15m'),
    mailRateLimitMax: read.int('MAIL_RATE_LIMIT_MAX', 5, 1, 10_000_000),
  }

  // Off unless set; then a secret like the others (Prometheus sends it as a bearer token).
  const metricsTokenValue = secretFromEnvironment(read, cwd, 'METRICS_TOKEN')
  const metricsToken = metricsTokenValue === undefined ? undefined : checkSecret('METRICS_TOKEN', metricsTokenValue)
  const backupCron = read.raw('BACKUP_CRON')
  if (backupCron !== undefined) {
    if (database.kind !== 'sqlite') {
      throw new ConfigError('BACKUP_CRON', 'scheduled backups are for the SQLite database; use pg_dump with PostgreSQL')
    }
    try {
      new Cron(backupCron, { paused: true }).stop()
    } catch {
      throw new ConfigError('BACKUP_CRON', `"${backupCron}" is not a cron expression (5 or 6 fields)`)
    }
  }
  const operations = {
    metricsToken,
    securityEventRetention: read.duration('SECURITY_EVENT_RETENTION', '90d'),
    backup: Object.freeze({
      cron: backupCron,
      dir: path.resolve(cwd, read.string('BACKUP_DIR', path.join(dataDir, 'backups'))),
      keep: read.int('BACKUP_KEEP', 7, 1, 10_000),
    }),
  }

  return Object.freeze({
    ...rest,
    ...mail,
    ...operations,
    dataDir,
    secretsFile,
    database,
    redisUrl,
    jwtSecret: secret('JWT_SECRET'),
    cookieSecret: secret('COOKIE_SECRET'),
    dataEncryptionKey: secret('DATA_ENCRYPTION_KEY'),
    introspectionClient,
  })
}
