// Every configuration variable in one schema: how it is written, its bounds,
// its default and the one line that a bad value gets. env-schema validates the
// environment against it with Ajv; a value is written as text (a number, a
// duration, a boolean word, a list) and read into its value by the `parse`
// keyword below, in the way env-schema's own `separator` keyword splits lists.
// The README's Configuration table documents the same variables (a test holds
// the two together). Turning the variables into `Config` is src/config.ts.
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { parseEnv } from 'node:util'
import { parse as milliseconds } from '@lukeed/ms'
import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { Ajv, type ErrorObject, type KeywordDefinition } from 'ajv'
import { Cron } from 'croner'
import envSchema from 'env-schema'

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

export const MIN_SECRET_BYTES = 32

// ---------------------------------------------------------------- reading text into values

/**
 * Parses `30s`, `15m`, `12h`, `7d` or a plain number of seconds; `undefined` if
 * invalid. The README's grammar, narrower than @lukeed/ms's (no `1.5h`, no
 * `15 minutes`, and a bare number is seconds, not milliseconds), which converts
 * the units.
 */
export function parseDuration(value: string): number | undefined {
  const text = value.trim()
  const match = /^(\d{1,9})([smhd]?)$/.exec(text)
  if (!match) return undefined
  const seconds = match[2] ? (milliseconds(text) ?? 0) / 1000 : Number(match[1])
  return seconds > 0 ? seconds : undefined
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on'])
const FALSE_WORDS = new Set(['false', '0', 'no', 'off'])

const urlOrUndefined = (text: string): URL | undefined => {
  try {
    return new URL(text)
  } catch {
    return undefined
  }
}

/** Comma-separated entries, each trimmed; the schema's `items` checks them. */
const splitList = (text: string): string[] => text.split(',').map((entry) => entry.trim())

/** The schema of one variable, as the keywords below see it. */
interface VariableSchema {
  readonly enum?: readonly string[]
}

/** How each kind of value is written; a parser returns `undefined` for a value it refuses. */
const PARSERS = {
  integer: (text: string) => (/^\d+$/.test(text) ? Number(text) : undefined),
  boolean: (text: string) => {
    const word = text.toLowerCase()
    return TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : undefined
  },
  duration: parseDuration,
  /** A duration, or `off` (also false, no, 0): false. */
  durationOrOff: (text: string) => (FALSE_WORDS.has(text.toLowerCase()) ? false : parseDuration(text)),
  /** One of the schema's `enum`, in any case, spelt as the enum spells it (JOSE names are case-sensitive). */
  word: (text: string, schema: VariableSchema) =>
    schema.enum?.find((word) => word.toLowerCase() === text.toLowerCase()),
  list: splitList,
  /** Fastify's trustProxy: off, `true`, a hop count, or a list of addresses and CIDRs (checked by `items`). */
  trustProxy: (text: string): boolean | number | string[] => {
    const word = text.toLowerCase()
    if (FALSE_WORDS.has(word)) return false
    if (word === 'true') return true
    return /^\d+$/.test(text) ? Number(text) : splitList(text)
  },
  proxyAddress: (text: string) => {
    const [address, prefix, extra] = text.split('/')
    const family = isIP(address ?? '')
    const prefixOk = prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= (family === 6 ? 128 : 32))
    return family !== 0 && prefixOk && extra === undefined ? text : undefined
  },
  /** An http(s) origin, with or without a trailing slash; read as the bare origin. */
  origin: (text: string) => {
    const url = urlOrUndefined(text)
    const ok = url && ['http:', 'https:'].includes(url.protocol) && url.origin === text.replace(/\/$/, '')
    return ok ? url.origin : undefined
  },
  cron: (text: string) => {
    try {
      new Cron(text, { paused: true }).stop()
      return text
    } catch {
      return undefined
    }
  },
  /** `postgres://` or `postgresql://`, a path, `file:` or `sqlite:`; any other scheme is refused (rather than taken for a file name). */
  databaseUrl: (text: string) =>
    /^(sqlite|file):/i.test(text) || /^postgres(ql)?:\/\//i.test(text) || !/^[a-z][a-z0-9+.-]*:\/\//i.test(text)
      ? text
      : undefined,
  smtpUrl: (text: string) => {
    const url = urlOrUndefined(text)
    return url && ['smtp:', 'smtps:'].includes(url.protocol) && url.hostname !== '' ? text : undefined
  },
  /** http(s) without a fragment (mailed links put their token there); read in URL's normal form. */
  publicUrl: (text: string) => {
    const url = urlOrUndefined(text)
    const ok = url && ['http:', 'https:'].includes(url.protocol) && url.hash === '' && !text.includes('#')
    return ok ? url.toString() : undefined
  },
} satisfies Record<string, (text: string, schema: VariableSchema) => unknown>

type ParserName = keyof typeof PARSERS

/**
 * `parse: NAME` reads a text value with PARSERS[NAME] and puts the value in its
 * place. It runs before every other keyword of the variable's schema, so
 * `minimum`, `maximum`, `enum` and `items` check the value read, not the text.
 */
const parseKeyword: KeywordDefinition = {
  keyword: 'parse',
  schemaType: 'string',
  modifying: true,
  errors: false,
  before: 'enum',
  compile: (name: string, parentSchema) => {
    const parser: ((text: string, schema: VariableSchema) => unknown) | undefined = PARSERS[name as ParserName]
    if (!parser) throw new Error(`no parser ${name}`)
    return (data, context) => {
      if (typeof data !== 'string' || !context) return false
      const value = parser(data, parentSchema as VariableSchema)
      if (value === undefined) return false
      context.parentData[context.parentDataProperty] = value
      return true
    }
  },
}

/** `minBytes: N`: at least N bytes in UTF-8 (for secrets, whose strength is in bytes, not characters). */
const minBytesKeyword: KeywordDefinition = {
  keyword: 'minBytes',
  type: 'string',
  schemaType: 'number',
  errors: false,
  compile: (minimum: number) => (data: string) => Buffer.byteLength(data, 'utf8') >= minimum,
}

// ---------------------------------------------------------------- kinds of variables

/**
 * `message`: the one line a bad value gets after `NAME: `, with `{value}` for the
 * value as written (never in the message of a secret or a URL that may hold a
 * password); an object gives one per failing keyword (`default` for the rest).
 * `file`: the value may come from the file that NAME_FILE names (Docker and
 * systemd credentials).
 */
interface Annotations {
  message?: string | Record<string, string>
  file?: boolean
  items?: Annotations
}

// A variable that `parse` reads has no `type`: it is text until `parse` makes it
// a value (declaring both as a union of types adds half again to Ajv's compile time).

const Integer = (fallback: number | undefined, minimum: number, maximum: number) =>
  Type.Unsafe<number>({
    parse: 'integer',
    minimum,
    maximum,
    ...(fallback === undefined ? {} : { default: String(fallback) }),
    message: `"{value}" is not an integer between ${minimum} and ${maximum}`,
  })

const DURATION_MESSAGE = '"{value}" is not a duration (use 30s, 15m, 12h, 7d or a number of seconds)'

/** A duration, read in seconds. */
const Duration = (fallback?: string) =>
  Type.Unsafe<number>({
    parse: 'duration',
    ...(fallback === undefined ? {} : { default: fallback }),
    message: DURATION_MESSAGE,
  })

const Flag = (fallback: boolean) =>
  Type.Unsafe<boolean>({
    parse: 'boolean',
    default: String(fallback),
    message: '"{value}" is not a boolean (use true or false)',
  })

/** One of `words`, in any case. */
const OneOf = <const Words extends readonly string[]>(words: Words, fallback?: Words[number]) =>
  Type.Unsafe<Words[number]>({
    enum: words,
    parse: 'word',
    ...(fallback === undefined ? {} : { default: fallback }),
    message: `"{value}" is not one of ${words.join(', ')}`,
  })

const Text = (options: { default?: string; pattern?: string } & Annotations = {}) =>
  Type.Unsafe<string>({ type: 'string', ...options })

/** Text that `parse` checks (and may put in a normal form). */
const Checked = (parse: ParserName, options: { default?: string } & Annotations) =>
  Type.Unsafe<string>({ parse, ...options })

const Schedule = (fallback?: string) =>
  Checked('cron', {
    ...(fallback === undefined ? {} : { default: fallback }),
    message: '"{value}" is not a cron expression (5 or 6 fields)',
  })

/** At least MIN_SECRET_BYTES; also from NAME_FILE. */
const Secret = () =>
  Type.Unsafe<string>({
    type: 'string',
    minBytes: MIN_SECRET_BYTES,
    file: true,
    message: `must be at least ${MIN_SECRET_BYTES} bytes long`,
  })

/** A comma-separated list whose entries `parse` reads. */
const List = (entry: ParserName, message: string) =>
  Type.Unsafe<string[]>({ parse: 'list', items: { parse: entry, message } })

export type TrustProxy = boolean | number | string[]

/** Shortest JWT_KEY_ROTATION: a rotation takes a JWKS cache lifetime plus an access-token lifetime to finish. */
const MIN_KEY_ROTATION_SECONDS = 3600

// ---------------------------------------------------------------- the schema

/**
 * Every variable latchkey reads, in the order they are checked. A variable with
 * a default that depends on another (HEADERS_TIMEOUT, PUBLIC_URL, MAIL_FROM,
 * BACKUP_DIR, the database's file) has none here: src/config.ts fills it in.
 */
export const EnvSchema = Type.Object(
  {
    PORT: Integer(3000, 0, 65535),
    HOST: Text({ default: '0.0.0.0' }),
    DATA_DIR: Text({ default: './data' }),
    DATABASE_URL: Type.Optional(
      Checked('databaseUrl', { message: 'use postgres://..., postgresql://..., a file path, file: or sqlite:' }),
    ),
    DATABASE_POOL_MAX: Integer(10, 1, 1000),
    DATABASE_BUSY_TIMEOUT: Duration('5s'),
    REDIS_URL: Type.Optional(Text({ pattern: '^rediss?://\\S+$', message: 'must start with redis:// or rediss://' })),

    JWT_ACCESS_TOKEN_DURATION: Duration('15m'),
    JWT_REFRESH_TOKEN_DURATION: Duration('7d'),
    JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION: Duration('5m'),
    SESSION_MAX_AGE: Duration('30d'),
    REFRESH_REUSE_GRACE: Duration('10s'),

    COOKIE_SECURE: Flag(true),
    COOKIE_SAMESITE: Type.Optional(OneOf(['lax', 'strict', 'none'])),
    CLEANUP_CRON: Schedule('0 3 */3 * *'),
    LOG_LEVEL: OneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    TRUST_PROXY: Type.Unsafe<TrustProxy>({
      parse: 'trustProxy',
      default: 'false',
      items: { parse: 'proxyAddress', message: '"{value}" is not true, a hop count or an IP address/CIDR' },
    }),
    CORS_ALLOWED_ORIGIN: Type.Optional(List('origin', '"{value}" is not an origin like https://app.example.com')),
    COOKIE_DOMAIN: Type.Optional(
      Text({
        pattern: '^\\.?[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$',
        message: '"{value}" is not a domain name',
      }),
    ),

    REQUEST_TIMEOUT: Duration('30s'),
    HEADERS_TIMEOUT: Type.Optional(Duration()),
    BODY_LIMIT: Integer(16 * 1024, 1024, 10 * 1024 * 1024),
    CONNECTION_TIMEOUT: Duration('60s'),
    // Longer than the idle timeout of common load balancers (60 s), as Fastify's default.
    KEEP_ALIVE_TIMEOUT: Duration('72s'),

    JWT_ISSUER: Text({ default: 'latchkey' }),
    JWT_ALGORITHM: OneOf(['EdDSA', 'ES256', 'HS256'], 'EdDSA'),
    JWT_AUDIENCE: Type.Optional(Text()),
    JWT_KEY_ROTATION: Type.Unsafe<number | false>({
      parse: 'durationOrOff',
      minimum: MIN_KEY_ROTATION_SECONDS,
      default: 'off',
      message: { minimum: '"{value}" is shorter than 1h (use off, or a duration like 30d)', default: DURATION_MESSAGE },
    }),
    MAX_SESSIONS_PER_USER: Integer(100, 1, 100_000),
    AUTO_REFRESH: Flag(false),
    RATE_LIMIT_MAX: Integer(300, 1, 10_000_000),
    AUTH_RATE_LIMIT_MAX: Integer(10, 1, 10_000_000),
    PUBLIC_ACCOUNT_PAGE: Flag(true),
    ARGON2_MEMORY_KIB: Integer(19456, 8, 4 * 1024 * 1024),
    ARGON2_TIME_COST: Integer(2, 1, 100),
    ARGON2_PARALLELISM: Integer(1, 1, 64),
    // One core is left to the event loop, so a login flood cannot slow every
    // other request (token checks, data) down with it.
    HASH_CONCURRENCY: Integer(Math.max(1, availableParallelism() - 1), 1, 256),
    HASH_QUEUE_MAX: Integer(32, 0, 100_000),

    // Given (or in NAME_FILE), or else generated into DATA_DIR (src/config.ts).
    JWT_SECRET: Type.Optional(Secret()),
    COOKIE_SECRET: Type.Optional(Secret()),
    DATA_ENCRYPTION_KEY: Type.Optional(Secret()),
    INTROSPECTION_CLIENT_ID: Type.Optional(Text({ pattern: '^[^:\\s]+$', message: 'must not contain ":" or spaces' })),
    INTROSPECTION_CLIENT_SECRET: Type.Optional(Secret()),

    PUBLIC_URL: Type.Optional(
      Checked('publicUrl', {
        message: '"{value}" is not an http(s) URL without a fragment, like https://auth.example.com/',
      }),
    ),
    // The value may hold a password: the message never repeats it.
    SMTP_URL: Type.Optional(
      Checked('smtpUrl', {
        file: true,
        message: 'is not a URL like smtp://host:587 or smtps://user:password@host:465',
      }),
    ),
    MAIL_FROM: Type.Optional(
      Text({
        pattern: '^(?:[^<>\\r\\n]*<[^<>\\s@]+@[^<>\\s@]+>|[^<>\\s@]+@[^<>\\s@]+)$',
        message: '"{value}" is not an address like "latchkey <noreply@example.com>"',
      }),
    ),
    WEBAUTHN_RP_ID: Type.Optional(
      Text({
        pattern: '^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$',
        message: '"{value}" is not a host name like example.com (no scheme, no port)',
      }),
    ),
    WEBAUTHN_ORIGINS: Type.Optional(List('origin', '"{value}" is not an origin like https://app.example.com')),
    REQUIRE_EMAIL_VERIFICATION: Flag(false),
    SIGN_IN_LINKS: Flag(true),
    EMAIL_VERIFICATION_TOKEN_DURATION: Duration('24h'),
    PASSWORD_RESET_TOKEN_DURATION: Duration('30m'),
    SIGN_IN_LINK_TOKEN_DURATION: Duration('15m'),
    MAIL_RATE_LIMIT_MAX: Integer(5, 1, 10_000_000),

    METRICS_TOKEN: Type.Optional(Secret()),
    SECURITY_EVENT_RETENTION: Duration('90d'),
    BACKUP_CRON: Type.Optional(Schedule()),
    BACKUP_DIR: Type.Optional(Text()),
    BACKUP_KEEP: Integer(7, 1, 10_000),
  },
  { additionalProperties: false },
)

/** The variables, read and checked. */
export type Environment = Static<typeof EnvSchema>

// ---------------------------------------------------------------- reading the environment

export type Env = Record<string, string | undefined>

export interface EnvironmentOptions {
  /** Environment to read; defaults to `process.env`. */
  env?: Env
  /** Directory holding `.env` and the files that relative paths name; defaults to `process.cwd()`. */
  cwd?: string
}

/**
 * `.env` in `cwd` with the real environment over it (the real environment
 * wins), each value trimmed; a blank value counts as unset.
 */
export function rawEnvironment(options: EnvironmentOptions = {}): Record<string, string> {
  const cwd = options.cwd ?? process.cwd()
  const file = path.join(cwd, '.env')
  let dotEnv: Env = {}
  try {
    dotEnv = parseEnv(readFileSync(file, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const merged: Env = { ...dotEnv, ...(options.env ?? process.env) }
  const environment: Record<string, string> = {}
  for (const [name, value] of Object.entries(merged)) {
    const text = value?.trim()
    if (text) environment[name] = text
  }
  return environment
}

let ajv: Ajv | undefined

/** One Ajv for the schema, so it is compiled once per process (Ajv caches it by the schema object). */
function environmentAjv(): Ajv {
  ajv ??= new Ajv({
    // env-schema's settings (it drops unknown variables, fills in defaults), but
    // no type coercion: `parse` reads the values, with the README's grammar.
    removeAdditional: true,
    useDefaults: true,
    coerceTypes: false,
    // The first bad variable only.
    allErrors: false,
    // Compiled once per process, on the start path, to validate once: what
    // would make the validator faster (Ajv's optimizer, checking the schema
    // against the JSON Schema meta-schema) would only make start-up slower.
    // The schema is fixed, and every test run compiles it.
    code: { optimize: false },
    validateSchema: false,
    // A keyword Ajv does not know is an error; untyped schemas are deliberate (see `parse`).
    strictSchema: true,
    strictTypes: false,
    keywords: [parseKeyword, minBytesKeyword, 'message', 'file'],
  })
  return ajv
}

/** The first of Ajv's errors as one line naming the variable. */
function toConfigError(error: ErrorObject | undefined, environment: Record<string, string>): ConfigError {
  const [, name = '', entry] = (error?.instancePath ?? '').split('/')
  const variable = EnvSchema.properties[name as keyof Environment] as (TSchema & Annotations) | undefined
  // A list's entry has its own schema and message.
  const schema: Annotations | undefined = entry === undefined ? variable : variable?.items
  const text = environment[name] ?? ''
  const value = entry === undefined ? text : (splitList(text)[Number(entry)] ?? '')
  const message =
    typeof schema?.message === 'object'
      ? (schema.message[error?.keyword ?? ''] ?? schema.message.default)
      : schema?.message
  return new ConfigError(
    name || 'configuration',
    (message ?? error?.message ?? 'is not valid').replace('{value}', () => value),
  )
}

/**
 * Reads and checks every variable; throws `ConfigError` naming the first bad
 * one. Files named by NAME_FILE are read first, so their contents are checked
 * like values set directly.
 */
export function readEnvironment(options: EnvironmentOptions = {}): Environment {
  const cwd = options.cwd ?? process.cwd()
  const environment = rawEnvironment(options)
  for (const [name, schema] of Object.entries(EnvSchema.properties) as Array<[string, TSchema & Annotations]>) {
    const file = environment[`${name}_FILE`]
    if (!schema.file || environment[name] !== undefined || file === undefined) continue
    try {
      environment[name] = readFileSync(path.resolve(cwd, file), 'utf8').trim()
    } catch (error) {
      throw new ConfigError(`${name}_FILE`, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code}`)
    }
  }
  try {
    return envSchema<Environment>({ schema: EnvSchema, data: environment, env: false, ajv: environmentAjv() })
  } catch (error) {
    const errors = (error as { errors?: ErrorObject[] }).errors
    if (!errors) throw error
    throw toConfigError(errors[0], environment)
  }
}
