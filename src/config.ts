// Configuration: environment + `.env` + generated secrets, validated once into a
// frozen, typed object. This is the only module that reads `process.env`.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { parseEnv } from 'node:util'
import { Cron } from 'croner'
import type { DatabaseConfig } from './db/dialect.js'

export type SameSite = 'lax' | 'strict' | 'none'
export type TrustProxy = boolean | number | string[]

export interface Config {
  readonly port: number
  readonly host: string
  readonly dataDir: string
  /** The embedded SQLite file (the default) or PostgreSQL, from DATABASE_URL. */
  readonly database: DatabaseConfig
  /** Shares rate limits and failed-login counters between instances. */
  readonly redisUrl: string | undefined
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  readonly trustProxy: TrustProxy
  readonly bodyLimit: number
  readonly jwtSecret: string
  readonly cookieSecret: string
  readonly dataEncryptionKey: string
  readonly jwtIssuer: string
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

/**
 * Reads the secrets file in `dataDir`, creating it (mode 0600, written atomically)
 * on first start, so tokens and ciphertexts survive restarts.
 */
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

function loadGeneratedSecrets(dataDir: string): Record<string, string> {
  const file = path.join(dataDir, SECRETS_FILE)
  if (existsSync(file)) {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'))
    } catch {
      throw new ConfigError('DATA_DIR', `${file} is not valid JSON; restore it from a backup`)
    }
    if (typeof parsed !== 'object' || parsed === null) {
      throw new ConfigError('DATA_DIR', `${file} does not hold the generated secrets`)
    }
    const secrets = parsed as Record<string, unknown>
    const missing = GENERATED_SECRETS.filter((name) => typeof secrets[name] !== 'string')
    if (missing.length === 0) return secrets as Record<string, string>
    // An older or partial file: keep what it has, add what it lacks.
    for (const name of missing) secrets[name] = randomBytes(32).toString('base64url')
    writeSecretsFile(file, secrets)
    return secrets as Record<string, string>
  }
  const secrets = Object.fromEntries(GENERATED_SECRETS.map((name) => [name, randomBytes(32).toString('base64url')]))
  writeSecretsFile(file, secrets)
  return secrets
}

function writeSecretsFile(file: string, secrets: Record<string, unknown>): void {
  const temporary = `${file}.${process.pid}.tmp`
  writeFileSync(temporary, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
  renameSync(temporary, file)
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

  const rest = {
    port,
    host: read.string('HOST', '0.0.0.0'),
    logLevel,
    trustProxy,
    bodyLimit: read.int('BODY_LIMIT', 16 * 1024, 1024, 10 * 1024 * 1024),
    jwtIssuer: read.string('JWT_ISSUER', 'latchkey'),
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
  if (missing.length > 0) {
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    } catch (error) {
      throw new ConfigError('DATA_DIR', `cannot create ${dataDir}: ${(error as NodeJS.ErrnoException).code}`)
    }
    generated = loadGeneratedSecrets(dataDir)
  }
  const secret = (name: (typeof GENERATED_SECRETS)[number]): string =>
    given[name] ?? checkSecret(name, generated[name] ?? '')

  return Object.freeze({
    ...rest,
    dataDir,
    database,
    redisUrl,
    jwtSecret: secret('JWT_SECRET'),
    cookieSecret: secret('COOKIE_SECRET'),
    dataEncryptionKey: secret('DATA_ENCRYPTION_KEY'),
  })
}
