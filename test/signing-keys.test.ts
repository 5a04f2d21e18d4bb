// Signing keys of access tokens (src/auth/signing-keys.ts): asymmetric by
// default, one key set in the database for every instance, rotation without a
// token refused that should still be good, revocation at once, private keys
// never in clear. Time moves with the TestClock; a second database handle plays
// `latchkey keys` (another process on the same database).
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { SignJWT } from 'jose'
import t from 'tap'
import latchkey, { buildApp, serverOptions } from '../src/app.js'
import { deriveKeys } from '../src/auth/keys.js'
import {
  accessTokenPolicy,
  createKeyRing,
  ensureCurrentKey,
  JWKS_MAX_AGE,
  KEY_SET_REFRESH_MS,
  listKeys,
  openPrivateKey,
  revokeKey,
  rotateKeys,
} from '../src/auth/signing-keys.js'
import { type Config, ConfigError, loadConfig } from '../src/config.js'
import { openDatabase } from '../src/db/dialect.js'
import { migrateToLatest } from '../src/db/migrator.js'
import {
  buildTestApp,
  confirmPassword,
  freshPostgresSchema,
  login,
  onPostgres,
  signup,
  sleep,
  TEST_ENV,
  TEST_SECRETS,
  TestClock,
  tempDir,
  testDatabaseEnv,
} from './helper.js'
import { decodeJwt, forgeJwt } from './jwt.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

interface Built {
  app: FastifyInstance
  config: Config
  clock: TestClock
}

/** An app on a given DATA_DIR and environment (for restarts and second instances). */
async function buildOn(t: Teardown, dir: string, env: Record<string, string>): Promise<Built> {
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, ...env }, cwd: dir })
  const clock = new TestClock()
  const app = await buildApp(config, { clock })
  t.teardown(() => app.close())
  return { app, config, clock }
}

/** Another connection to the app's database, as `latchkey keys` opens it; closed at the end. */
function otherHandle(t: Teardown, config: Config) {
  const database = openDatabase(config.database)
  t.teardown(() => database.close())
  return { db: database.db, keys: deriveKeys(config), policy: accessTokenPolicy(config) }
}

const kidOf = (token: string) => decodeJwt(token).header.kid as string
const me = (app: FastifyInstance, token: string) =>
  app.inject({ url: '/users/me', headers: { authorization: `Bearer ${token}` } })
const jwksOf = async (app: FastifyInstance) => (await app.inject('/.well-known/jwks.json')).json().keys as JwkOut[]
interface JwkOut {
  kid: string
  kty: string
  crv: string
  x: string
  y?: string
  alg: string
  use: string
  d?: string
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check()) return Date.now() - started
    if (Date.now() - started > timeoutMs) return Number.POSITIVE_INFINITY
    await sleep(50)
  }
}

t.test('the first start creates one EdDSA key; tokens name it; the JWKS publishes it', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const rows = await app.db.selectFrom('signing_keys').selectAll().execute()
  t.equal(rows.length, 1, 'one key')
  const [row] = rows
  t.equal(row?.algorithm, 'EdDSA')
  t.ok(row?.private_key && row.private_key.length > 48, 'the private key is stored, sealed')

  const account = await signup(app)
  const { header } = decodeJwt(account.accessToken)
  t.same(header, { alg: 'EdDSA', kid: row?.kid, typ: 'JWT' })
  t.equal((await me(app, account.accessToken)).statusCode, 200)

  const response = await app.inject('/.well-known/jwks.json')
  t.equal(response.statusCode, 200)
  t.equal(response.headers['cache-control'], `public, max-age=${JWKS_MAX_AGE}`, 'cacheable for a few minutes')
  const { keys } = response.json()
  t.same(Object.keys(keys[0]).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'], 'public members only')
  t.match(keys[0], { kid: row?.kid, kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
  t.same(
    (await listKeys(app.db, clock.now())).map((key) => key.state),
    ['current'],
  )
})

t.test('JWT_ALGORITHM=ES256 signs with P-256 keys', async (t) => {
  const { app } = await buildTestApp(t, { JWT_ALGORITHM: 'ES256' })
  const account = await signup(app)
  t.equal(decodeJwt(account.accessToken).header.alg, 'ES256')
  t.equal((await me(app, account.accessToken)).statusCode, 200)
  const [key] = await jwksOf(app)
  t.match(key, { kty: 'EC', crv: 'P-256', alg: 'ES256', kid: kidOf(account.accessToken) })
  t.type(key?.y, 'string')
  t.notOk(key?.d, 'no private part')
})

t.test('HS256 only when JWT_ALGORITHM=HS256: a key derived from JWT_SECRET, nothing published', async (t) => {
  const { app, config, clock } = await buildTestApp(t, { JWT_ALGORITHM: 'HS256' })
  const account = await signup(app)
  const { header, claims } = decodeJwt(account.accessToken)
  t.equal(header.alg, 'HS256')
  t.match(header.kid, /^hs256-/)
  t.equal((await me(app, account.accessToken)).statusCode, 200)
  t.same(await jwksOf(app), [], 'a symmetric key is never published')
  t.equal((await app.db.selectFrom('signing_keys').selectAll().execute()).length, 0, 'no database keys')

  const keys = deriveKeys(config)
  const hs = { alg: 'HS256', typ: 'JWT', kid: header.kid }
  const exp = Math.floor(clock.now() / 1000) + 60
  t.equal((await me(app, forgeJwt({ ...claims, exp }, keys.accessToken, hs))).statusCode, 200, 'the derived key')
  for (const [name, token] of [
    ['wrong issuer', forgeJwt({ ...claims, iss: 'evil' }, keys.accessToken, hs)],
    ['no kid', forgeJwt(claims, keys.accessToken)],
    ['another kid', forgeJwt(claims, keys.accessToken, { ...hs, kid: 'hs256-other' })],
    ['HS512', forgeJwt(claims, keys.accessToken, { ...hs, alg: 'HS512' })],
    ['alg none', forgeJwt(claims, null, { alg: 'none', kid: header.kid })],
    ['JWT_SECRET itself', forgeJwt(claims, config.jwtSecret, hs)],
  ] as const) {
    const response = await me(app, token)
    t.equal(response.json().code, 'ACCESS_TOKEN_INVALID', name)
  }
})

t.test('instances starting together on an empty database create exactly one key', async (t) => {
  const env = await testDatabaseEnv(t)
  const dir = tempDir(t)
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, ...env }, cwd: dir })
  const handles = Array.from({ length: 4 }, () => openDatabase(config.database))
  t.teardown(() => Promise.all(handles.map((handle) => handle.close())))
  const [first] = handles
  if (!first) throw new Error('no handle')
  await migrateToLatest(first.db)
  const keys = deriveKeys(config)
  const policy = accessTokenPolicy(config)
  const at = Date.now()
  const created = await Promise.all(handles.map((handle) => ensureCurrentKey(handle.db, keys, policy, at)))
  t.equal(created.filter((kid) => kid !== undefined).length, 1, 'one of them created it')
  const rows = await handles[0]?.db.selectFrom('signing_keys').select('kid').execute()
  t.same(
    rows?.map((row) => row.kid),
    created.filter((kid) => kid !== undefined),
    'and only that one is stored',
  )
})

t.test('N servers starting together on an empty PostgreSQL schema: one key set', { skip: !onPostgres }, async (t) => {
  const url = await freshPostgresSchema(t)
  const env = { DATABASE_URL: url, ...TEST_SECRETS }
  const apps = await Promise.all([0, 1, 2].map(() => buildOn(t, tempDir(t), env)))
  const rows = await apps[0]?.app.db.selectFrom('signing_keys').select('kid').execute()
  t.equal(rows?.length, 1)
  const sets = await Promise.all(apps.map(({ app }) => jwksOf(app)))
  for (const set of sets) t.same(set, sets[0], 'every instance publishes the same keys')
})

t.test(
  'rotation: next is published ahead, signs after one JWKS cache lifetime; the old key stays for its tokens',
  async (t) => {
    const { app, config, clock } = await buildTestApp(t, { JWT_ACCESS_TOKEN_DURATION: '60s' })
    const { db, keys, policy } = otherHandle(t, config)
    const account = await signup(app)
    const issued: string[] = [account.accessToken]
    const k1 = kidOf(account.accessToken)
    /** Every token that has not expired names a key in the JWKS, and is accepted. */
    const checkLiveTokens = async (label: string) => {
      const published = new Set((await jwksOf(app)).map((key) => key.kid))
      for (const token of issued) {
        const live = clock.now() < (decodeJwt(token).claims.exp as number) * 1000
        if (!live) continue
        t.ok(published.has(kidOf(token)), `${label}: the key of a live token is published`)
        t.equal((await me(app, token)).statusCode, 200, `${label}: a live token is accepted`)
      }
    }
    const newToken = async () => {
      const token = (await login(app, account.email)).accessToken
      issued.push(token)
      return token
    }

    const rotatedAt = clock.now()
    const started = await rotateKeys(db, keys, policy, rotatedAt)
    if (started.kind !== 'started') throw new Error(`rotation: ${started.kind}`)
    const k2 = started.next.kid
    t.equal(started.next.activatesAt - rotatedAt, JWKS_MAX_AGE * 1000, 'signs after one JWKS cache lifetime')
    t.equal(started.current.kid, k1)
    t.equal(
      started.current.expiresAt,
      started.next.activatesAt + 60_000 + 60_000,
      'the old key leaves the JWKS one access-token lifetime (and a minute of clock leeway) after it retires',
    )
    t.equal((await rotateKeys(db, keys, policy, clock.now())).kind, 'pending', 'one rotation at a time')
    await app.signingKeys.refresh()

    t.same(
      (await jwksOf(app)).map((key) => key.kid),
      [k1, k2],
      'current and next are published',
    )
    t.equal(kidOf(await newToken()), k1, 'the current key still signs')
    await checkLiveTokens('next published')

    clock.advance(JWKS_MAX_AGE * 1000 - 1000)
    const lastOfK1 = await newToken()
    t.equal(kidOf(lastOfK1), k1, 'a second before the switch')
    clock.advance(1000)
    t.equal(kidOf(await newToken()), k2, 'the next key signs from its activation')
    t.same(
      (await listKeys(app.db, clock.now())).map((key) => [key.kid, key.state]),
      [
        [k2, 'current'],
        [k1, 'retired'],
      ],
    )
    t.same(
      (await jwksOf(app)).map((key) => key.kid),
      [k2, k1],
      'the retired key stays published',
    )
    await checkLiveTokens('after the switch')
    t.equal((await me(app, lastOfK1)).statusCode, 200, 'the last token of the old key works until it expires')

    clock.advance(60_000)
    t.equal((await me(app, lastOfK1)).json().code, 'ACCESS_TOKEN_EXPIRED', '...and not after')
    t.ok(
      (await jwksOf(app)).some((key) => key.kid === k1),
      'still published during the clock leeway',
    )
    await checkLiveTokens('old tokens expired')
    clock.advance(60_000)
    t.same(
      (await jwksOf(app)).map((key) => key.kid),
      [k2],
      'gone once every token it signed has expired',
    )
    await app.signingKeys.maintain()
    const oldRow = await app.db.selectFrom('signing_keys').selectAll().where('kid', '=', k1).executeTakeFirst()
    t.equal(oldRow?.private_key, null, 'its private key is destroyed')
    await checkLiveTokens('old key gone')
  },
)

t.test('revoking a key refuses its tokens at once, remembered ones too, and replaces it', async (t) => {
  const { app, config, clock } = await buildTestApp(t, {
    INTROSPECTION_CLIENT_ID: 'api',
    INTROSPECTION_CLIENT_SECRET: 'introspection-secret-0123456789abcdef',
  })
  const { db, keys, policy } = otherHandle(t, config)
  const account = await signup(app)
  const k1 = kidOf(account.accessToken)
  t.equal((await me(app, account.accessToken)).statusCode, 200, 'verified and remembered')

  const result = await revokeKey(db, keys, policy, k1, clock.now())
  if (result.kind !== 'revoked') throw new Error(`revoke: ${result.kind}`)
  t.equal(result.wasState, 'current')
  t.ok(result.replacement, 'a current key is replaced at once')
  const waited = await until(
    async () => (await me(app, account.accessToken)).statusCode === 401,
    2 * KEY_SET_REFRESH_MS + 500,
  )
  t.ok(waited <= 2 * KEY_SET_REFRESH_MS + 500, `refused within the re-read interval (${waited} ms)`)
  t.equal((await me(app, account.accessToken)).json().code, 'ACCESS_TOKEN_INVALID')
  const introspection = await app.inject({
    method: 'POST',
    url: '/auth/introspect',
    headers: {
      authorization: `Basic ${Buffer.from('api:introspection-secret-0123456789abcdef').toString('base64')}`,
    },
    payload: { token: account.accessToken },
  })
  t.same(introspection.json(), { active: false }, 'introspection says so too')

  const fresh = await login(app, account.email)
  t.equal(kidOf(fresh.accessToken), result.replacement?.kid, 'new tokens come from the replacement')
  t.equal((await me(app, fresh.accessToken)).statusCode, 200)
  t.same(
    (await jwksOf(app)).map((key) => key.kid),
    [result.replacement?.kid],
    'the revoked key is no longer published',
  )
  const row = await app.db.selectFrom('signing_keys').selectAll().where('kid', '=', k1).executeTakeFirst()
  t.equal(row?.private_key, null, 'its private key is destroyed')
  t.equal((await revokeKey(db, keys, policy, k1, clock.now())).kind, 'already')
  t.equal((await revokeKey(db, keys, policy, 'no-such-kid', clock.now())).kind, 'unknown')
})

t.test('revoking a pending key cancels its rotation; revoking a retired key ends its tokens', async (t) => {
  const { app, config, clock } = await buildTestApp(t)
  const { db, keys, policy } = otherHandle(t, config)
  const account = await signup(app)
  const k1 = kidOf(account.accessToken)
  const started = await rotateKeys(db, keys, policy, clock.now())
  if (started.kind !== 'started') throw new Error(started.kind)
  await revokeKey(db, keys, policy, started.next.kid, clock.now())
  clock.advance(JWKS_MAX_AGE * 1000 + 1000)
  t.same(
    (await listKeys(db, clock.now())).map((key) => [key.kid, key.state]),
    [
      [started.next.kid, 'revoked'],
      [k1, 'current'],
    ],
    'the old key stays current',
  )
  await app.signingKeys.refresh()
  t.equal(kidOf((await login(app, account.email)).accessToken), k1)

  const second = await rotateKeys(db, keys, policy, clock.now())
  if (second.kind !== 'started') throw new Error(second.kind)
  clock.advance(JWKS_MAX_AGE * 1000)
  await app.signingKeys.refresh()
  const ofK1 = account.accessToken
  const beforeExpiry = await login(app, account.email)
  t.equal(kidOf(beforeExpiry.accessToken), second.next.kid)
  // A token of k1 issued just before the switch is still live.
  t.equal((await revokeKey(db, keys, policy, k1, clock.now())).kind, 'revoked')
  await app.signingKeys.refresh()
  t.equal((await me(app, ofK1)).statusCode, 401, 'the retired key verifies nothing once revoked')
  t.equal((await me(app, beforeExpiry.accessToken)).statusCode, 200, 'the current key is untouched')
})

t.test('a token naming an unknown kid makes the instance re-read the keys, at most once a second', async (t) => {
  const { app, config, clock } = await buildTestApp(t)
  // Only the unknown-kid path re-reads from now on.
  await app.signingKeys.stop()
  const { db, keys, policy } = otherHandle(t, config)
  const other = createKeyRing(db, keys, policy, clock)
  const account = await signup(app)
  const { claims } = decodeJwt(account.accessToken)

  const revoked = await revokeKey(db, keys, policy, kidOf(account.accessToken), clock.now())
  if (revoked.kind !== 'revoked' || !revoked.replacement) throw new Error('no replacement')
  await other.refresh()
  const ofK2 = await other.sign(claims, clock.now())
  t.equal(kidOf(ofK2), revoked.replacement.kid)
  t.equal((await me(app, ofK2)).statusCode, 200, 'a new kid is looked up in the database')
  t.equal((await me(app, account.accessToken)).statusCode, 401, 'and the revocation it brought is seen')

  await sleep(1100)
  const { privateKey } = generateKeyPairSync('ed25519')
  const madeUp = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'made-up' }).sign(privateKey)
  t.equal((await me(app, madeUp)).statusCode, 401, 'a made-up kid: one read, then refused')
  // A key published right after that read, and a token of it (signed as if five minutes later, when it is current).
  const started = await rotateKeys(db, keys, policy, clock.now())
  if (started.kind !== 'started') throw new Error(started.kind)
  const later = new TestClock()
  later.advance(clock.now() - later.now() + JWKS_MAX_AGE * 1000)
  const ahead = createKeyRing(db, keys, policy, later)
  await ahead.refresh()
  const ofK3 = await ahead.sign(claims, later.now())
  t.equal(kidOf(ofK3), started.next.kid)
  t.equal((await me(app, ofK3)).statusCode, 401, 'another unknown kid within the second: no second read')
  await sleep(1100)
  t.equal((await me(app, ofK3)).statusCode, 200, 'a second later, it is looked up')
})

t.test(
  'two instances on one PostgreSQL schema: one key set, rotations and revocations seen without restart',
  { skip: !onPostgres },
  async (t) => {
    const url = await freshPostgresSchema(t)
    const env = { DATABASE_URL: url, ...TEST_SECRETS }
    const a = await buildOn(t, tempDir(t), env)
    const b = await buildOn(t, tempDir(t), env)
    const advance = (ms: number) => {
      a.clock.advance(ms)
      b.clock.advance(ms)
    }
    t.same(await jwksOf(a.app), await jwksOf(b.app))
    const account = await signup(a.app)
    t.equal((await me(b.app, account.accessToken)).statusCode, 200, "A's token works on B")

    const { db, keys, policy } = { db: a.app.db, keys: a.app.keys, policy: accessTokenPolicy(a.config) }
    const started = await rotateKeys(db, keys, policy, a.clock.now())
    if (started.kind !== 'started') throw new Error(started.kind)
    const seen = await until(
      async () => (await jwksOf(b.app)).some((key) => key.kid === started.next.kid),
      2 * KEY_SET_REFRESH_MS + 500,
    )
    t.ok(Number.isFinite(seen), `B publishes the next key without a restart (${seen} ms)`)
    advance(JWKS_MAX_AGE * 1000)
    const onB = await login(b.app, account.email)
    t.equal(kidOf(onB.accessToken), started.next.kid, 'B signs with the key A published')
    t.equal((await me(a.app, onB.accessToken)).statusCode, 200, "B's token works on A")
    t.equal((await me(b.app, account.accessToken)).statusCode, 200, 'the old token still works on B')

    await revokeKey(b.app.db, b.app.keys, policy, started.next.kid, b.clock.now())
    const refused = await until(
      async () => (await me(a.app, onB.accessToken)).statusCode === 401,
      2 * KEY_SET_REFRESH_MS + 500,
    )
    t.ok(Number.isFinite(refused), `a revocation on B is enforced by A without a restart (${refused} ms)`)
  },
)

t.test('automatic rotation with JWT_KEY_ROTATION; off by default', async (t) => {
  const off = await buildTestApp(t)
  off.clock.advance(400 * 86_400_000)
  await off.app.signingKeys.maintain()
  t.same(
    (await listKeys(off.app.db, off.clock.now())).map((key) => key.state),
    ['current'],
    'off by default',
  )

  const on = await buildTestApp(t, { JWT_KEY_ROTATION: '1h' })
  const states = async () => (await listKeys(on.app.db, on.clock.now())).map((key) => key.state)
  on.clock.advance(3600_000 - 1000)
  await on.app.signingKeys.maintain()
  t.same(await states(), ['current'], 'not before the period')
  on.clock.advance(1000)
  await on.app.signingKeys.maintain()
  t.same(await states(), ['next', 'current'], 'a rotation starts when the current key is as old as the period')
  await on.app.signingKeys.maintain()
  t.same(await states(), ['next', 'current'], 'one at a time')
  on.clock.advance(JWKS_MAX_AGE * 1000)
  await on.app.signingKeys.maintain()
  t.same(await states(), ['current', 'retired'], 'and completes as a manual one does')
})

t.test('JWT_AUDIENCE: tokens carry aud, and one without it (or with another) is refused', async (t) => {
  const { app, clock } = await buildTestApp(t, { JWT_AUDIENCE: 'https://api.example.com' })
  const account = await signup(app)
  const { claims } = decodeJwt(account.accessToken)
  t.equal(claims.aud, 'https://api.example.com')
  t.equal((await me(app, account.accessToken)).statusCode, 200)
  const noAudience = await app.signingKeys.sign({ ...claims, aud: undefined }, clock.now())
  const otherAudience = await app.signingKeys.sign({ ...claims, aud: 'https://other.example.com' }, clock.now())
  t.equal((await me(app, noAudience)).json().code, 'ACCESS_TOKEN_INVALID', 'no aud')
  t.equal((await me(app, otherAudience)).json().code, 'ACCESS_TOKEN_INVALID', 'another aud')

  const plain = await buildTestApp(t)
  t.notOk('aud' in decodeJwt((await signup(plain.app)).accessToken).claims, 'no aud unless configured')
})

t.test('private keys are never stored or logged in clear', async (t) => {
  const dir = tempDir(t)
  const env = { ...(await testDatabaseEnv(t)), DATA_DIR: dir, LOG_LEVEL: 'trace' }
  const config = loadConfig({ env: { ...TEST_ENV, ...env }, cwd: dir })
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  const clock = new TestClock()
  const app = Fastify({ ...serverOptions(config), logger: { ...(serverOptions(config).logger as object), stream } })
  await app.register(fp(latchkey), { config, clock })
  await app.ready()
  t.teardown(() => app.close())

  const { db, keys, policy } = otherHandle(t, config)
  const account = await signup(app)
  await rotateKeys(db, keys, policy, clock.now())
  await app.signingKeys.refresh()
  clock.advance(JWKS_MAX_AGE * 1000)
  await login(app, account.email)
  await confirmPassword(app, account)
  // An ES256 key too.
  await rotateKeys(db, keys, { ...policy, algorithm: 'ES256' }, clock.now())

  const rows = await app.db.selectFrom('signing_keys').selectAll().execute()
  t.equal(rows.length, 3)
  const secrets = rows.map((row) => {
    const privateKey = openPrivateKey(deriveKeys(config), row)
    const der = privateKey.export({ format: 'der', type: 'pkcs8' })
    const d = (privateKey.export({ format: 'jwk' }) as { d: string }).d
    return {
      kid: row.kid,
      der,
      raw: Buffer.from(d, 'base64url'),
      d,
      pem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    }
  })
  const pemBody = (pem: string) => pem.split('\n').slice(1, -2).join('')

  let stored: Buffer
  if (config.database.kind === 'sqlite') {
    const file = config.database.file
    stored = Buffer.concat(
      ['', '-wal', '-shm'].flatMap((suffix) => {
        try {
          return [readFileSync(file + suffix)]
        } catch {
          return []
        }
      }),
    )
    t.ok(stored.length > 0, 'read the database file and its WAL')
  } else {
    const dump = await app.db
      .selectFrom('signing_keys')
      .select((eb) => eb.cast<string>(eb.ref('private_key'), 'text').as('text'))
      .execute()
    stored = Buffer.concat([
      ...rows.map((row) => Buffer.from(row.private_key ?? new Uint8Array())),
      Buffer.from(dump.map((row) => row.text).join('\n')),
    ])
  }
  const log = lines.join('')
  t.ok(lines.length >= 5, `trace logging happened (${lines.length} lines)`)
  for (const secret of secrets) {
    t.equal(stored.indexOf(secret.der), -1, `${secret.kid}: no PKCS#8 key in the database`)
    t.equal(stored.indexOf(secret.raw), -1, `${secret.kid}: no raw private key in the database`)
    t.equal(stored.indexOf(Buffer.from(secret.raw.toString('hex'))), -1, `${secret.kid}: nor its hex`)
    t.equal(stored.indexOf(Buffer.from(secret.d)), -1, `${secret.kid}: nor its JWK "d"`)
    for (const text of [secret.d, pemBody(secret.pem), secret.der.toString('base64'), secret.raw.toString('hex')]) {
      t.notOk(log.includes(text), `${secret.kid}: not in the logs`)
    }
  }
})

t.test('another JWT_SECRET cannot open the keys: start-up says so; revoking the key is the way out', async (t) => {
  const dir = tempDir(t)
  const database: Record<string, string> = onPostgres ? { DATABASE_URL: await freshPostgresSchema(t) } : {}
  const first: Record<string, string> = { ...database, ...TEST_SECRETS }
  const configOf = (env: Record<string, string>) =>
    loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, ...env }, cwd: dir })
  const app = await buildApp(configOf(first))
  const kid = kidOf((await signup(app)).accessToken)
  await app.close()

  const second = { ...first, JWT_SECRET: 'another-jwt-secret-0123456789abcdef0123456789' }
  const failing = Fastify(serverOptions(configOf(second)))
  failing.register(fp(latchkey), { config: configOf(second) })
  await t.rejects(async () => {
    await failing.ready()
  }, /sealed under another JWT_SECRET.*latchkey keys revoke/)
  await failing.close()

  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, ...second }, cwd: dir })
  const { db, keys, policy } = otherHandle(t, config)
  const revoked = await revokeKey(db, keys, policy, kid, Date.now())
  t.equal(revoked.kind, 'revoked')
  const restarted = await buildOn(t, dir, second)
  const account = await signup(restarted.app)
  t.not(kidOf(account.accessToken), kid)
  t.equal((await me(restarted.app, account.accessToken)).statusCode, 200)
})

t.test('tokens are signed with the key the ring names, and nothing else verifies', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const { claims } = decodeJwt(account.accessToken)
  // A well-formed token from a key latchkey never made, under the real kid.
  const { privateKey } = generateKeyPairSync('ed25519')
  const foreign = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: kidOf(account.accessToken) })
    .sign(privateKey)
  t.equal((await me(app, foreign)).json().code, 'ACCESS_TOKEN_INVALID')
  // jku/jwk/x5u pointing at the attacker's key are never followed.
  const { x } = privateKey.export({ format: 'jwk' }) as { x: string }
  const embedded = await new SignJWT(claims)
    .setProtectedHeader({
      alg: 'EdDSA',
      kid: 'attacker',
      jwk: { kty: 'OKP', crv: 'Ed25519', x },
      jku: 'http://127.0.0.1:1/jwks.json',
      x5u: 'http://127.0.0.1:1/cert.pem',
    })
    .sign(privateKey)
  t.equal((await me(app, embedded)).json().code, 'ACCESS_TOKEN_INVALID')
  t.equal((await me(app, await app.signingKeys.sign(claims, clock.now()))).statusCode, 200, 'the real key works')
})

t.test('configuration', async (t) => {
  const dir = tempDir(t)
  const load = (env: Record<string, string>) => loadConfig({ env: { DATA_DIR: dir, ...env }, cwd: dir })
  t.equal(load({}).jwtAlgorithm, 'EdDSA', 'EdDSA by default')
  t.equal(load({ JWT_ALGORITHM: 'es256' }).jwtAlgorithm, 'ES256', 'any case')
  t.equal(load({}).jwtKeyRotation, undefined, 'no automatic rotation by default')
  t.equal(load({ JWT_KEY_ROTATION: '30d' }).jwtKeyRotation, 30 * 86400)
  t.equal(load({}).introspectionClient, undefined, 'introspection off by default')
  const bad: Array<[Record<string, string>, string]> = [
    [{ JWT_ALGORITHM: 'RS256' }, 'JWT_ALGORITHM'],
    [{ JWT_ALGORITHM: 'none' }, 'JWT_ALGORITHM'],
    [{ JWT_KEY_ROTATION: '10m' }, 'JWT_KEY_ROTATION'],
    [{ JWT_KEY_ROTATION: 'weekly' }, 'JWT_KEY_ROTATION'],
    [{ INTROSPECTION_CLIENT_ID: 'api' }, 'INTROSPECTION_CLIENT_SECRET'],
    [{ INTROSPECTION_CLIENT_SECRET: 'x'.repeat(40) }, 'INTROSPECTION_CLIENT_ID'],
    [{ INTROSPECTION_CLIENT_ID: 'api', INTROSPECTION_CLIENT_SECRET: 'short' }, 'INTROSPECTION_CLIENT_SECRET'],
  ]
  for (const [env, variable] of bad) {
    let thrown: unknown
    try {
      load(env)
    } catch (error) {
      thrown = error
    }
    t.ok(thrown instanceof ConfigError && thrown.variable === variable, `${JSON.stringify(env)}: ${variable}`)
  }
})
