import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig, parseDuration, SECRETS_FILE } from '../src/config.js'
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
