import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { EnvSchema } from '../src/config/env.js'
import { type Config, ConfigError, loadConfig, parseDuration, SECRETS_FILE } from '../src/config.js'
import { TEST_SECRETS, tempDir } from './helper.js'

t.test('durations accept 30s, 15m, 12h, 7d or seconds', async (t) => {
  const cases: Array<[string, number | undefined]> = [
    ['30s', 30],
    ['15m', 900],
    ['12h', 43200],
    ['7d', 604800],
    ['45', 45],
    ['0', undefined],
    ['-5s', undefined],
    ['1.5h', undefined],
    ['15 minutes', undefined],
    ['', undefined],
  ]
  for (const [input, expected] of cases) t.equal(parseDuration(input), expected, input)
})

t.test('defaults need nothing set', async (t) => {
  const dir = tempDir(t)
  const config = loadConfig({ env: {}, cwd: dir })
  t.equal(config.port, 3000)
  t.equal(config.host, '0.0.0.0')
  t.equal(config.dataDir, path.join(dir, 'data'))
  t.same(config.database, { kind: 'sqlite', file: path.join(dir, 'data', 'latchkey.db'), busyTimeoutMs: 5000 })
  t.equal(config.redisUrl, undefined)
  t.equal(config.accessTokenTtl, 15 * 60)
  t.equal(config.refreshTokenTtl, 7 * 86400)
  t.equal(config.passwordConfirmationTtl, 5 * 60)
  t.equal(config.sessionMaxAge, 30 * 86400)
  t.equal(config.refreshReuseGrace, 10)
  t.equal(config.bodyLimit, 16 * 1024)
  t.equal(config.rateLimitMax, 300)
  t.equal(config.authRateLimitMax, 10)
  t.equal(config.cleanupCron, '0 3 */3 * *')
  t.equal(config.cookieSecure, true)
  t.equal(config.autoRefresh, false)
  t.equal(config.trustProxy, false)
  t.equal(config.logLevel, 'info')
  t.ok(Object.isFrozen(config), 'configuration is frozen')
})

t.test("argon2id defaults are OWASP's (19 MiB, 2 iterations, 1 lane)", async (t) => {
  const config = loadConfig({ env: {}, cwd: tempDir(t) })
  t.equal(config.argon2MemoryKib, 19456)
  t.equal(config.argon2TimeCost, 2)
  t.equal(config.argon2Parallelism, 1)
})

t.test('secrets are generated once into a 0600 file and reused', async (t) => {
  const dir = tempDir(t)
  const first = loadConfig({ env: { DATA_DIR: 'store' }, cwd: dir })
  const file = path.join(dir, 'store', SECRETS_FILE)
  t.equal(statSync(file).mode & 0o777, 0o600, 'secrets file is private')
  const second = loadConfig({ env: { DATA_DIR: 'store' }, cwd: dir })
  t.equal(second.jwtSecret, first.jwtSecret)
  t.equal(second.cookieSecret, first.cookieSecret)
  t.equal(second.dataEncryptionKey, first.dataEncryptionKey)
  t.not(first.jwtSecret, first.cookieSecret, 'each secret is its own')
  t.ok(Buffer.byteLength(first.jwtSecret) >= 32)
  const stored = JSON.parse(readFileSync(file, 'utf8'))
  t.same(Object.keys(stored).sort(), ['COOKIE_SECRET', 'DATA_ENCRYPTION_KEY', 'JWT_SECRET'])
})

t.test('a secret in the environment wins over the file', async (t) => {
  const dir = tempDir(t)
  loadConfig({ env: {}, cwd: dir })
  const secret = 'x'.repeat(40)
  const config = loadConfig({ env: { JWT_SECRET: secret }, cwd: dir })
  t.equal(config.jwtSecret, secret)
})

t.test('.env in the working directory is read; the environment wins over it', async (t) => {
  const dir = tempDir(t)
  writeFileSync(path.join(dir, '.env'), 'PORT=4000\nLOG_LEVEL=debug\n')
  const config = loadConfig({ env: { LOG_LEVEL: 'warn' }, cwd: dir })
  t.equal(config.port, 4000)
  t.equal(config.logLevel, 'warn')
})

t.test('every bad value stops start-up with one line naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ JWT_ACCESS_TOKEN_DURATION: 'soon' }, 'JWT_ACCESS_TOKEN_DURATION'],
    [{ JWT_REFRESH_TOKEN_DURATION: '7 days' }, 'JWT_REFRESH_TOKEN_DURATION'],
    [{ JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION: '0' }, 'JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION'],
    [{ SESSION_MAX_AGE: 'forever' }, 'SESSION_MAX_AGE'],
    [{ REFRESH_REUSE_GRACE: 'x' }, 'REFRESH_REUSE_GRACE'],
    [{ JWT_SECRET: 'short' }, 'JWT_SECRET'],
    [{ COOKIE_SECRET: 'y'.repeat(31) }, 'COOKIE_SECRET'],
    [{ DATA_ENCRYPTION_KEY: 'z' }, 'DATA_ENCRYPTION_KEY'],
    [{ PORT: '99999' }, 'PORT'],
    [{ PORT: 'eighty' }, 'PORT'],
    [{ COOKIE_SECURE: 'maybe' }, 'COOKIE_SECURE'],
    [{ COOKIE_SAMESITE: 'loose' }, 'COOKIE_SAMESITE'],
    [{ COOKIE_SAMESITE: 'none', COOKIE_SECURE: 'false' }, 'COOKIE_SAMESITE'],
    [{ AUTO_REFRESH: 'sometimes' }, 'AUTO_REFRESH'],
    [{ TRUST_PROXY: 'not-an-ip' }, 'TRUST_PROXY'],
    [{ CORS_ALLOWED_ORIGIN: 'example.com' }, 'CORS_ALLOWED_ORIGIN'],
    [{ RATE_LIMIT_MAX: '0' }, 'RATE_LIMIT_MAX'],
    [{ AUTH_RATE_LIMIT_MAX: '-1' }, 'AUTH_RATE_LIMIT_MAX'],
    [{ BODY_LIMIT: 'lots' }, 'BODY_LIMIT'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ ARGON2_MEMORY_KIB: '1' }, 'ARGON2_MEMORY_KIB'],
    [{ ARGON2_TIME_COST: '0' }, 'ARGON2_TIME_COST'],
    [{ CLEANUP_CRON: 'every day' }, 'CLEANUP_CRON'],
    [{ CLEANUP_CRON: '99 3 * * *' }, 'CLEANUP_CRON'],
    [{ DATABASE_URL: 'mysql://h/db' }, 'DATABASE_URL'],
    [{ DATABASE_BUSY_TIMEOUT: 'soon' }, 'DATABASE_BUSY_TIMEOUT'],
    [{ DATABASE_URL: 'postgres://h/db', ...TEST_SECRETS, DATABASE_POOL_MAX: '0' }, 'DATABASE_POOL_MAX'],
    [
      { DATABASE_URL: 'postgres://h/db', COOKIE_SECRET: 'c'.repeat(40), DATA_ENCRYPTION_KEY: 'd'.repeat(40) },
      'JWT_SECRET',
    ],
    [{ JWT_SECRET_FILE: 'no-such-file' }, 'JWT_SECRET_FILE'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
  ]
  for (const [env, variable] of cases) {
    const error = t.throws(() => loadConfig({ env, cwd: tempDir(t) }), ConfigError, variable) as unknown as ConfigError
    t.equal(error.variable, variable, `${JSON.stringify(env)} names ${variable}`)
    t.match(error.message, new RegExp(`^${variable}: `))
    t.notMatch(error.message, /\n/, 'one line')
  }
})

t.test('a bad secret is reported before anything is written', async (t) => {
  const dir = tempDir(t)
  t.throws(() => loadConfig({ env: { JWT_SECRET: 'short' }, cwd: dir }), ConfigError)
  t.throws(() => statSync(path.join(dir, 'data', SECRETS_FILE)), 'no secrets file written')
})

t.test('TRUST_PROXY takes true, a hop count, or addresses and CIDRs', async (t) => {
  const dir = tempDir(t)
  t.equal(loadConfig({ env: { TRUST_PROXY: 'true' }, cwd: dir }).trustProxy, true)
  t.equal(loadConfig({ env: { TRUST_PROXY: '2' }, cwd: dir }).trustProxy, 2)
  t.same(loadConfig({ env: { TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,::1' }, cwd: dir }).trustProxy, [
    '10.0.0.1',
    '192.168.0.0/16',
    '::1',
  ])
  t.equal(loadConfig({ env: { TRUST_PROXY: 'false' }, cwd: dir }).trustProxy, false)
})

/** The test secrets but `name`. */
const secretsWithout = (name: string): Record<string, string> =>
  Object.fromEntries(Object.entries(TEST_SECRETS).filter(([key]) => key !== name))

t.test('DATABASE_URL selects SQLite (unset, a path, file: or sqlite:) or PostgreSQL', async (t) => {
  const dir = tempDir(t)
  const sqlite = (file: string) => ({ kind: 'sqlite', file, busyTimeoutMs: 5000 })
  const postgres = (url: string) => ({ kind: 'postgres', url, poolMax: 10 })
  const cases: Array<[string, Record<string, string>, object]> = [
    ['unset: latchkey.db in DATA_DIR', { DATA_DIR: 'store' }, sqlite(path.join(dir, 'store', 'latchkey.db'))],
    ['a relative path', { DATABASE_URL: './x.db' }, sqlite(path.join(dir, 'x.db'))],
    ['file: and a relative path', { DATABASE_URL: 'file:./x.db' }, sqlite(path.join(dir, 'x.db'))],
    ['sqlite: and a relative path', { DATABASE_URL: 'sqlite:./x.db' }, sqlite(path.join(dir, 'x.db'))],
    ['file:// and an absolute path', { DATABASE_URL: `file://${dir}/abs.db` }, sqlite(path.join(dir, 'abs.db'))],
    [
      'a busy timeout',
      { DATABASE_URL: './x.db', DATABASE_BUSY_TIMEOUT: '30s' },
      {
        ...sqlite(path.join(dir, 'x.db')),
        busyTimeoutMs: 30_000,
      },
    ],
    [
      'postgres://',
      { DATABASE_URL: 'postgres://u:p@db.example:5432/latchkey', ...TEST_SECRETS },
      postgres('postgres://u:p@db.example:5432/latchkey'),
    ],
    [
      'postgresql://',
      { DATABASE_URL: 'postgresql://db.example/latchkey?sslmode=require', ...TEST_SECRETS },
      postgres('postgresql://db.example/latchkey?sslmode=require'),
    ],
    [
      'a pool size',
      { DATABASE_URL: 'postgres://db.example/latchkey', DATABASE_POOL_MAX: '25', ...TEST_SECRETS },
      {
        ...postgres('postgres://db.example/latchkey'),
        poolMax: 25,
      },
    ],
  ]
  for (const [name, env, expected] of cases) {
    t.same(loadConfig({ env, cwd: dir }).database, expected, name)
  }
})

t.test('PostgreSQL needs every secret from the environment and writes no secrets file', async (t) => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['none given', {}, 'JWT_SECRET'],
    ['no JWT_SECRET', secretsWithout('JWT_SECRET'), 'JWT_SECRET'],
    ['no COOKIE_SECRET', secretsWithout('COOKIE_SECRET'), 'COOKIE_SECRET'],
    ['no DATA_ENCRYPTION_KEY', secretsWithout('DATA_ENCRYPTION_KEY'), 'DATA_ENCRYPTION_KEY'],
  ]
  for (const [name, secrets, variable] of cases) {
    const dir = tempDir(t)
    const env = { DATABASE_URL: 'postgres://db.example/latchkey', DATA_DIR: 'store', ...secrets }
    const error = t.throws(() => loadConfig({ env, cwd: dir }), ConfigError, name) as unknown as ConfigError
    t.equal(error.variable, variable, `${name}: names ${variable}`)
    t.match(error.message, new RegExp(`^${variable}: `))
    t.notMatch(error.message, /\n/, 'one line')
    t.notOk(existsSync(path.join(dir, 'store', SECRETS_FILE)), `${name}: no secrets file written in DATA_DIR`)
  }
  const dir = tempDir(t)
  const config = loadConfig({
    env: { DATABASE_URL: 'postgres://db.example/latchkey', DATA_DIR: 'store', ...TEST_SECRETS },
    cwd: dir,
  })
  t.equal(config.jwtSecret, TEST_SECRETS.JWT_SECRET)
  t.equal(config.cookieSecret, TEST_SECRETS.COOKIE_SECRET)
  t.equal(config.dataEncryptionKey, TEST_SECRETS.DATA_ENCRYPTION_KEY)
  t.notOk(existsSync(path.join(dir, 'store', SECRETS_FILE)), 'with all three given, no secrets file either')
})

t.test('a secret can come from the file NAME_FILE names', async (t) => {
  const dir = tempDir(t)
  const secret = 'f'.repeat(40)
  writeFileSync(path.join(dir, 'jwt-secret'), `${secret}\n`)
  t.equal(
    loadConfig({ env: { JWT_SECRET_FILE: 'jwt-secret' }, cwd: dir }).jwtSecret,
    secret,
    'relative to cwd, trimmed',
  )
  t.equal(
    loadConfig({ env: { JWT_SECRET_FILE: path.join(dir, 'jwt-secret') }, cwd: tempDir(t) }).jwtSecret,
    secret,
    'an absolute path',
  )
  const postgres = loadConfig({
    env: {
      DATABASE_URL: 'postgres://db.example/latchkey',
      JWT_SECRET_FILE: 'jwt-secret',
      ...secretsWithout('JWT_SECRET'),
    },
    cwd: dir,
  })
  t.equal(postgres.jwtSecret, secret, 'and counts as given for PostgreSQL')
  t.equal(
    loadConfig({ env: { JWT_SECRET: TEST_SECRETS.JWT_SECRET, JWT_SECRET_FILE: 'jwt-secret' }, cwd: dir }).jwtSecret,
    TEST_SECRETS.JWT_SECRET,
    'the variable itself wins over the file',
  )

  const missingDir = tempDir(t)
  const missing = t.throws(
    () => loadConfig({ env: { JWT_SECRET_FILE: 'no-such-file' }, cwd: missingDir }),
    ConfigError,
  ) as unknown as ConfigError
  t.equal(missing.variable, 'JWT_SECRET_FILE', 'a missing file names JWT_SECRET_FILE')
  t.match(missing.message, /^JWT_SECRET_FILE: .*no-such-file/)
  t.notOk(existsSync(path.join(missingDir, 'data', SECRETS_FILE)), 'and nothing is written')

  writeFileSync(path.join(dir, 'short-secret'), 'short\n')
  const short = t.throws(
    () => loadConfig({ env: { JWT_SECRET_FILE: 'short-secret' }, cwd: dir }),
    ConfigError,
  ) as unknown as ConfigError
  t.equal(short.variable, 'JWT_SECRET', 'a short secret in the file is refused like a short variable')
})

t.test('REDIS_URL takes redis:// or rediss:// only', async (t) => {
  const dir = tempDir(t)
  for (const url of ['redis://localhost:6379', 'rediss://user:pass@cache.example:6380/2']) {
    t.equal(loadConfig({ env: { REDIS_URL: url }, cwd: dir }).redisUrl, url, url)
  }
  for (const url of ['http://x', 'localhost:6379', 'redis://']) {
    const error = t.throws(
      () => loadConfig({ env: { REDIS_URL: url }, cwd: dir }),
      ConfigError,
      url,
    ) as unknown as ConfigError
    t.equal(error.variable, 'REDIS_URL', `${url} is refused`)
  }
})

// ---------------------------------------------------------------- the schema (src/config/env.ts)

t.test('values are read with the README grammar, not Ajv coercion', async (t) => {
  const dir = tempDir(t)
  const config = (env: Record<string, string>) => loadConfig({ env, cwd: dir })
  type Accepted = [Record<string, string>, (config: Config) => unknown, unknown]
  const autoRefresh = (word: string, value: boolean): Accepted => [{ AUTO_REFRESH: word }, (c) => c.autoRefresh, value]
  const keyRotation = (word: string, value?: number): Accepted => [
    { JWT_KEY_ROTATION: word },
    (c) => c.jwtKeyRotation,
    value,
  ]
  const accepted: Accepted[] = [
    [{ PORT: '05' }, (c) => c.port, 5],
    // Booleans in any case, with the words of the README and of systemd.
    ...['TRUE', 'Yes', 'on', '1'].map((word) => autoRefresh(word, true)),
    ...['False', 'no', 'OFF', '0'].map((word) => autoRefresh(word, false)),
    // Words in any case, spelt as latchkey spells them.
    [{ LOG_LEVEL: 'DEBUG' }, (c) => c.logLevel, 'debug'],
    [{ COOKIE_SAMESITE: 'Strict' }, (c) => c.cookieSameSite, 'strict'],
    [{ JWT_ALGORITHM: 'es256' }, (c) => c.jwtAlgorithm, 'ES256'],
    [{ JWT_ALGORITHM: 'eddsa' }, (c) => c.jwtAlgorithm, 'EdDSA'],
    // Durations, in seconds.
    [{ SESSION_MAX_AGE: '2h' }, (c) => c.sessionMaxAge, 7200],
    keyRotation('30d', 30 * 86400),
    ...['off', 'OFF', 'false', 'no', '0'].map((word) => keyRotation(word)),
    // Lists, each entry read on its own.
    [
      { CORS_ALLOWED_ORIGIN: 'https://a.example/, http://b.example:8080' },
      (c) => c.corsAllowedOrigins,
      ['https://a.example', 'http://b.example:8080'],
    ],
    // Defaults that depend on another variable.
    [{ PORT: '80' }, (c) => c.publicUrl, 'http://localhost/'],
    [{ PUBLIC_URL: 'https://auth.example.com' }, (c) => c.mailFrom, 'latchkey <noreply@auth.example.com>'],
    [{ REQUEST_TIMEOUT: '4s' }, (c) => c.headersTimeout, 4],
    // Passkeys: the relying party from PUBLIC_URL, unless set.
    [{ PUBLIC_URL: 'https://auth.example.com/account/' }, (c) => c.webauthnRpId, 'auth.example.com'],
    [{ PUBLIC_URL: 'https://auth.example.com/account/' }, (c) => c.webauthnOrigins, ['https://auth.example.com']],
    [{ PUBLIC_URL: 'http://10.0.0.5:3000/' }, (c) => c.webauthnOrigins, ['http://10.0.0.5:3000']],
    [
      {
        PUBLIC_URL: 'https://auth.example.com/',
        WEBAUTHN_RP_ID: 'Example.com',
        WEBAUTHN_ORIGINS: 'https://auth.example.com, https://app.example.com',
      },
      (c) => [c.webauthnRpId, c.webauthnOrigins],
      ['example.com', ['https://auth.example.com', 'https://app.example.com']],
    ],
    [{ WEBAUTHN_ORIGINS: 'http://localhost:5173' }, (c) => c.webauthnOrigins, ['http://localhost:5173']],
  ]
  for (const [env, field, expected] of accepted) t.same(field(config(env)), expected, JSON.stringify(env))

  const refused: Array<[Record<string, string>, string]> = [
    // Whole numbers in digits only: Ajv's own coercion would take these as 1000, 16, 5 and 5.
    ...['1e3', '0x10', '5.0', '+5'].map((port): [Record<string, string>, string] => [
      { PORT: port },
      `PORT: "${port}" is not an integer between 0 and 65535`,
    ]),
    [{ JWT_ALGORITHM: 'RS256' }, 'JWT_ALGORITHM: "RS256" is not one of EdDSA, ES256, HS256'],
    [{ JWT_KEY_ROTATION: '59m' }, 'JWT_KEY_ROTATION: "59m" is shorter than 1h (use off, or a duration like 30d)'],
    [
      { JWT_KEY_ROTATION: 'monthly' },
      'JWT_KEY_ROTATION: "monthly" is not a duration (use 30s, 15m, 12h, 7d or a number of seconds)',
    ],
    // A list's message names the entry.
    [
      { CORS_ALLOWED_ORIGIN: 'https://a.example, b.example' },
      'CORS_ALLOWED_ORIGIN: "b.example" is not an origin like https://app.example.com',
    ],
    [
      { TRUST_PROXY: '10.0.0.1, 10.0.0.0/33' },
      'TRUST_PROXY: "10.0.0.0/33" is not true, a hop count or an IP address/CIDR',
    ],
    [{ REQUEST_TIMEOUT: '4s', HEADERS_TIMEOUT: '5s' }, 'HEADERS_TIMEOUT: must not be longer than REQUEST_TIMEOUT (4s)'],
    [
      { WEBAUTHN_RP_ID: 'https://example.com' },
      'WEBAUTHN_RP_ID: "https://example.com" is not a host name like example.com (no scheme, no port)',
    ],
    [
      { WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://example.org' },
      'WEBAUTHN_ORIGINS: https://example.org is not on WEBAUTHN_RP_ID example.com or a subdomain of it',
    ],
    [
      { WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'http://app.example.com' },
      'WEBAUTHN_ORIGINS: http://app.example.com: passkeys need https (or localhost)',
    ],
    [
      { PUBLIC_URL: 'https://auth.example.com/', WEBAUTHN_RP_ID: 'example.org' },
      'PUBLIC_URL: https://auth.example.com is not on WEBAUTHN_RP_ID example.org or a subdomain of it',
    ],
  ]
  for (const [env, message] of refused) {
    const error = t.throws(() => config(env), ConfigError, JSON.stringify(env)) as unknown as ConfigError
    t.equal(error.message, message)
  }
})

t.test('blank values are unset, unknown variables are ignored, values are trimmed', async (t) => {
  const dir = tempDir(t)
  const config = loadConfig({
    env: { PORT: '   ', LOG_LEVEL: '', HOST: ' 127.0.0.1 ', NOT_A_LATCHKEY_VARIABLE: 'x', PATH: '/usr/bin' },
    cwd: dir,
  })
  t.equal(config.port, 3000)
  t.equal(config.logLevel, 'info')
  t.equal(config.host, '127.0.0.1')
})

t.test('a message never repeats a secret or a URL that may hold a password', async (t) => {
  const dir = tempDir(t)
  const cases: Array<[Record<string, string>, string, string]> = [
    [{ JWT_SECRET: 'hunter2-secret' }, 'JWT_SECRET', 'hunter2'],
    [{ METRICS_TOKEN: 'hunter2-token' }, 'METRICS_TOKEN', 'hunter2'],
    [{ SMTP_URL: 'http://user:hunter2@mail.example' }, 'SMTP_URL', 'hunter2'],
    [{ DATABASE_URL: 'mysql://user:hunter2@db.example/x' }, 'DATABASE_URL', 'hunter2'],
    [{ REDIS_URL: 'http://user:hunter2@cache.example' }, 'REDIS_URL', 'hunter2'],
  ]
  for (const [env, variable, secret] of cases) {
    const error = t.throws(() => loadConfig({ env, cwd: dir }), ConfigError) as unknown as ConfigError
    t.equal(error.variable, variable)
    t.notMatch(error.message, secret, `${variable}: the value is not in the message`)
  }
  writeFileSync(path.join(dir, 'smtp-url'), 'ftp://user:hunter2@mail.example\n')
  const fromFile = t.throws(
    () => loadConfig({ env: { SMTP_URL_FILE: 'smtp-url' }, cwd: dir }),
    ConfigError,
  ) as unknown as ConfigError
  t.equal(fromFile.variable, 'SMTP_URL', 'a file is checked like the variable')
  t.notMatch(fromFile.message, 'hunter2')
})

/** The variables of the README's Configuration table. */
function readmeVariables(): Set<string> {
  const readme = readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8')
  const section = readme.slice(
    readme.indexOf('\n## Configuration\n'),
    readme.indexOf('\n## ', readme.indexOf('\n## Configuration\n') + 1),
  )
  return new Set([...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((match) => match[1] as string))
}

t.test('the schema and the README name the same variables', async (t) => {
  const documented = readmeVariables()
  const schema = new Set(Object.keys(EnvSchema.properties))
  // Read before the configuration, by the single binary (nativeCacheDir).
  documented.delete('LATCHKEY_NATIVE_CACHE_DIR')
  t.same(
    [...schema].filter((name) => !documented.has(name)),
    [],
    'every variable of the schema is in the README',
  )
  t.same(
    [...documented].filter((name) => !schema.has(name)),
    [],
    'every variable of the README is in the schema',
  )
  const readme = readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8')
  for (const [name, variable] of Object.entries(EnvSchema.properties)) {
    if ((variable as { file?: boolean }).file) t.match(readme, `\`${name}_FILE\``, `${name}_FILE is documented`)
  }
})
