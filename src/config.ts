// Configuration: environment + `.env` + generated secrets, validated once into a
// frozen, typed object. The variables are read and checked against one schema
// in config/env.ts (the only other module that reads `process.env`); here they
// become `Config`, with the defaults that depend on other variables, the rules
// that join two variables, and the generated secrets.
//
// Adding a variable: its entry in `EnvSchema` (config/env.ts: how it is written,
// bounds, default, message), its field in `Config` and the one line that fills
// that field in `loadConfig`, and its row in the README's Configuration table
// (test/config.test.ts checks that the table and the schema name the same variables).
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
import { userInfo } from 'node:os'
import path from 'node:path'
import {
  ConfigError,
  type Environment,
  type EnvironmentOptions,
  MIN_SECRET_BYTES,
  rawEnvironment,
  readEnvironment,
  type TrustProxy,
} from './config/env.js'
import type { DatabaseConfig } from './db/dialect.js'

export { ConfigError, parseDuration } from './config/env.js'

export type SameSite = 'lax' | 'strict' | 'none'
export type AccessTokenAlgorithm = 'EdDSA' | 'ES256' | 'HS256'
export type { TrustProxy }

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

export const SECRETS_FILE = 'secrets.json'
const GENERATED_SECRETS = ['JWT_SECRET', 'COOKIE_SECRET', 'DATA_ENCRYPTION_KEY'] as const

/** A secret from the generated file; the schema checks the ones given in the environment. */
function checkSecret(name: string, value: string): string {
  if (Buffer.byteLength(value, 'utf8') < MIN_SECRET_BYTES) {
    throw new ConfigError(name, `must be at least ${MIN_SECRET_BYTES} bytes long`)
  }
  return value
}

/**
 * DATABASE_URL (checked by the schema): `postgres://` or `postgresql://`
 * selects PostgreSQL; unset, a path, `file:` or `sqlite:` the embedded SQLite file.
 */
function databaseConfig(env: Environment, cwd: string, dataDir: string): DatabaseConfig {
  const url = env.DATABASE_URL
  const busyTimeoutMs = env.DATABASE_BUSY_TIMEOUT * 1000
  if (url === undefined) return { kind: 'sqlite', file: path.join(dataDir, 'latchkey.db'), busyTimeoutMs }
  if (/^postgres(ql)?:\/\//i.test(url)) return { kind: 'postgres', url, poolMax: env.DATABASE_POOL_MAX }
  return { kind: 'sqlite', file: path.resolve(cwd, url.replace(/^(sqlite|file):(\/\/)?/i, '')), busyTimeoutMs }
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

export type LoadConfigOptions = EnvironmentOptions

/**
 * Where the single binary unpacks its native addons and static files:
 * `LATCHKEY_NATIVE_CACHE_DIR`, else `$XDG_CACHE_HOME/latchkey`, else
 * `$HOME/.cache/latchkey` (if `$HOME` exists), else `<DATA_DIR>/cache`.
 * Apart from `Config` because the binary needs it before `loadConfig` runs:
 * its modules load the addons as they load (scripts/binary/main.ts).
 */
export function nativeCacheDir(options: LoadConfigOptions = {}): string {
  const cwd = options.cwd ?? process.cwd()
  const env = rawEnvironment(options)
  const configured = env.LATCHKEY_NATIVE_CACHE_DIR
  if (configured !== undefined) return path.resolve(cwd, configured)
  // The XDG spec says to ignore relative paths.
  const xdgCacheHome = env.XDG_CACHE_HOME
  if (xdgCacheHome !== undefined && path.isAbsolute(xdgCacheHome)) return path.join(xdgCacheHome, 'latchkey')
  // A system user's HOME may not exist (/nonexistent): then the data directory.
  const home = env.HOME
  if (home !== undefined && path.isAbsolute(home) && existsSync(home)) return path.join(home, '.cache', 'latchkey')
  return path.join(path.resolve(cwd, env.DATA_DIR ?? './data'), 'cache')
}

/**
 * Builds the configuration from the variables that src/config/env.ts reads and
 * checks, with the defaults that depend on other variables and the rules that
 * join two of them; throws `ConfigError` naming the first bad variable.
 */
/**
 * WEBAUTHN_RP_ID (default: PUBLIC_URL's host name) and WEBAUTHN_ORIGINS
 * (default: PUBLIC_URL's origin). Every origin must be on the RP ID or one of
 * its subdomains, as browsers require; listed ones must be https but on
 * localhost (PUBLIC_URL may be plain http on a first try: the server starts, and
 * browsers refuse passkeys there).
 */
function webAuthnSettings(
  rpIdGiven: string | undefined,
  originsGiven: readonly string[] | undefined,
  publicUrl: string,
): { webauthnRpId: string; webauthnOrigins: string[] } {
  const rpId = (rpIdGiven ?? new URL(publicUrl).hostname).toLowerCase()
  const variable = originsGiven === undefined ? 'PUBLIC_URL' : 'WEBAUTHN_ORIGINS'
  const origins = originsGiven ?? [new URL(publicUrl).origin]
  for (const origin of origins) {
    const host = new URL(origin).hostname
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      throw new ConfigError(variable, `${origin} is not on WEBAUTHN_RP_ID ${rpId} or a subdomain of it`)
    }
    const local = host === 'localhost' || host.endsWith('.localhost')
    if (originsGiven !== undefined && !origin.startsWith('https:') && !local) {
      throw new ConfigError(variable, `${origin}: passkeys need https (or localhost)`)
    }
  }
  return { webauthnRpId: rpId, webauthnOrigins: [...origins] }
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const cwd = options.cwd ?? process.cwd()
  const env = readEnvironment(options)

  const dataDir = path.resolve(cwd, env.DATA_DIR)
  const database = databaseConfig(env, cwd, dataDir)
  if (env.COOKIE_SAMESITE === 'none' && !env.COOKIE_SECURE) {
    throw new ConfigError('COOKIE_SAMESITE', '"none" needs Secure cookies (unset COOKIE_SECURE=false)')
  }
  // Slow clients (slowloris, a trickled body) must not hold a connection for ever.
  const headersTimeout = env.HEADERS_TIMEOUT ?? Math.min(10, env.REQUEST_TIMEOUT)
  if (headersTimeout > env.REQUEST_TIMEOUT) {
    throw new ConfigError('HEADERS_TIMEOUT', `must not be longer than REQUEST_TIMEOUT (${env.REQUEST_TIMEOUT}s)`)
  }
  // Introspection is off unless both are set.
  const introspectionId = env.INTROSPECTION_CLIENT_ID
  const introspectionSecret = env.INTROSPECTION_CLIENT_SECRET
  if ((introspectionId === undefined) !== (introspectionSecret === undefined)) {
    throw new ConfigError(
      introspectionId === undefined ? 'INTROSPECTION_CLIENT_ID' : 'INTROSPECTION_CLIENT_SECRET',
      'set both INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET, or neither',
    )
  }
  if (env.BACKUP_CRON !== undefined && database.kind !== 'sqlite') {
    throw new ConfigError('BACKUP_CRON', 'scheduled backups are for the SQLite database; use pg_dump with PostgreSQL')
  }

  // Secrets given in the environment (or in a file that NAME_FILE names) win
  // over the generated file; the schema has checked them, so a bad one is
  // reported before anything is written to disk.
  const missing = GENERATED_SECRETS.filter((name) => env[name] === undefined)
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
    env[name] ?? checkSecret(name, generated[name] ?? '')

  const publicUrl = env.PUBLIC_URL ?? new URL(`http://localhost:${env.PORT}/`).toString()

  return Object.freeze({
    port: env.PORT,
    host: env.HOST,
    dataDir,
    secretsFile,
    database,
    redisUrl: env.REDIS_URL,
    logLevel: env.LOG_LEVEL,
    trustProxy: env.TRUST_PROXY,
    bodyLimit: env.BODY_LIMIT,
    requestTimeout: env.REQUEST_TIMEOUT,
    headersTimeout,
    connectionTimeout: env.CONNECTION_TIMEOUT,
    keepAliveTimeout: env.KEEP_ALIVE_TIMEOUT,
    jwtSecret: secret('JWT_SECRET'),
    cookieSecret: secret('COOKIE_SECRET'),
    dataEncryptionKey: secret('DATA_ENCRYPTION_KEY'),
    jwtIssuer: env.JWT_ISSUER,
    jwtAlgorithm: env.JWT_ALGORITHM,
    jwtAudience: env.JWT_AUDIENCE,
    jwtKeyRotation: env.JWT_KEY_ROTATION || undefined,
    introspectionClient:
      introspectionId !== undefined && introspectionSecret !== undefined
        ? Object.freeze({ id: introspectionId, secret: introspectionSecret })
        : undefined,
    accessTokenTtl: env.JWT_ACCESS_TOKEN_DURATION,
    refreshTokenTtl: env.JWT_REFRESH_TOKEN_DURATION,
    passwordConfirmationTtl: env.JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION,
    sessionMaxAge: env.SESSION_MAX_AGE,
    refreshReuseGrace: env.REFRESH_REUSE_GRACE,
    maxSessionsPerUser: env.MAX_SESSIONS_PER_USER,
    autoRefresh: env.AUTO_REFRESH,
    cookieSecure: env.COOKIE_SECURE,
    cookieDomain: env.COOKIE_DOMAIN,
    cookieSameSite: env.COOKIE_SAMESITE,
    corsAllowedOrigins: env.CORS_ALLOWED_ORIGIN ?? [],
    rateLimitMax: env.RATE_LIMIT_MAX,
    authRateLimitMax: env.AUTH_RATE_LIMIT_MAX,
    cleanupCron: env.CLEANUP_CRON,
    publicAccountPage: env.PUBLIC_ACCOUNT_PAGE,
    argon2MemoryKib: env.ARGON2_MEMORY_KIB,
    argon2TimeCost: env.ARGON2_TIME_COST,
    argon2Parallelism: env.ARGON2_PARALLELISM,
    hashConcurrency: env.HASH_CONCURRENCY,
    hashQueueMax: env.HASH_QUEUE_MAX,
    smtpUrl: env.SMTP_URL,
    mailFrom: env.MAIL_FROM ?? `latchkey <noreply@${new URL(publicUrl).hostname}>`,
    publicUrl,
    ...webAuthnSettings(env.WEBAUTHN_RP_ID, env.WEBAUTHN_ORIGINS, publicUrl),
    requireEmailVerification: env.REQUIRE_EMAIL_VERIFICATION,
    signInLinks: env.SIGN_IN_LINKS,
    emailVerificationTokenTtl: env.EMAIL_VERIFICATION_TOKEN_DURATION,
    passwordResetTokenTtl: env.PASSWORD_RESET_TOKEN_DURATION,
    signInLinkTokenTtl: env.SIGN_IN_LINK_TOKEN_DURATION,
    mailRateLimitMax: env.MAIL_RATE_LIMIT_MAX,
    metricsToken: env.METRICS_TOKEN,
    securityEventRetention: env.SECURITY_EVENT_RETENTION,
    backup: Object.freeze({
      cron: env.BACKUP_CRON,
      dir: path.resolve(cwd, env.BACKUP_DIR ?? path.join(dataDir, 'backups')),
      keep: env.BACKUP_KEEP,
    }),
  })
}
