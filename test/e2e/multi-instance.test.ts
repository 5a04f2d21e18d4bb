// End to end, many instances (API.md section 6): three real server processes,
// A, B and C, on one PostgreSQL schema and one Redis behave as one server. They
// migrate an empty schema together once; a revocation on one is seen by the
// others on the very next request; concurrent refreshes of one token on
// different instances get the same successor; the rate limits and failed-login
// limits hold across all three; a login started on one finishes its second
// factor on another; and kill -9 of one loses no acknowledged write.
// Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379.
import { Redis } from 'ioredis'
import pg from 'pg'
import t from 'tap'
import { migrations } from '../../migrations/index.js'
import { freshPostgresSchema, PASSWORD, TEST_SECRETS, tempDir, uniqueEmail } from '../helper.js'
import { base32Decode, totp } from '../totp.js'
import {
  freePort,
  json,
  logLinesAtLeast,
  type ServerProcess,
  setCookieValue,
  spawnServer,
  stopServer,
  untilHealthy,
} from './server-process.js'

// Two Redis logical databases of this run's own, chosen by pid and FLUSHDB'd
// before use: one for the instances with the suite's generous limits, one for
// those with low limits. They cannot share one: the per-IP limit's key is the
// client IP alone (latchkey:ip:127.0.0.1), counted by every instance against
// its own max. Never 0 (a developer's default) nor 11 (test/redis.test.ts's).
const REDIS_DB = [1, 3, 5, 7, 9, 12, 14][process.pid % 7] as number
const redisUrl = (db: number) => `redis://127.0.0.1:6379/${db}`
const RATE_LIMIT_MAX = 30
const AUTH_RATE_LIMIT_MAX = 5

const databaseUrl = await freshPostgresSchema(t)
const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 })
const redis = new Redis(redisUrl(REDIS_DB), { maxRetriesPerRequest: 1 })
const limitedRedis = new Redis(redisUrl(REDIS_DB + 1), { maxRetriesPerRequest: 1 })
await Promise.all([redis.flushdb(), limitedRedis.flushdb()])

const started: ServerProcess[] = []
// Registered after the schema's teardown, so it runs before it (tap runs teardowns last-in first-out).
t.teardown(async () => {
  await Promise.all(started.map((server) => stopServer(server)))
  await pool.end()
  await Promise.all([redis.flushdb(), limitedRedis.flushdb()]).catch(() => {})
  redis.disconnect()
  limitedRedis.disconnect()
})

/** Spawns one process per name at the same moment (ports and data dirs prepared first); does not wait. */
async function spawnGroup(names: string[], env: Record<string, string>): Promise<ServerProcess[]> {
  const ports = await Promise.all(names.map(() => freePort()))
  const dirs = names.map(() => tempDir(t, 'latchkey-multi-'))
  const servers = names.map((name, i) =>
    spawnServer(name, {
      dataDir: dirs[i] as string,
      port: ports[i] as number,
      env: { DATABASE_URL: databaseUrl, ...TEST_SECRETS, LOG_LEVEL: 'warn', ...env },
    }),
  )
  started.push(...servers)
  return servers
}

let group: ServerProcess[] = []
/** Instance i of A, B, C (round robin for any i). */
const on = (i: number): ServerProcess => {
  const server = group[i % group.length]
  if (!server) throw new Error('the instances did not start')
  return server
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const sessionIdOf = (accessToken: string): string =>
  JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8')).sid

async function signUp(server: ServerProcess, email = uniqueEmail('multi')): Promise<string> {
  const response = await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))
  if (response.status !== 201) throw new Error(`signup on ${server.name}: ${response.status} ${await response.text()}`)
  return email
}

async function logIn(
  server: ServerProcess,
  email: string,
): Promise<{ accessToken: string; refreshCookie: string; sessionId: string }> {
  const response = await fetch(`${server.base}/auth/login`, json({ email, password: PASSWORD }))
  if (response.status !== 200) throw new Error(`login on ${server.name}: ${response.status} ${await response.text()}`)
  const { accessToken } = (await response.json()) as { accessToken: string }
  const refreshCookie = setCookieValue(response, 'refresh_token')
  if (!refreshCookie) throw new Error('login set no refresh cookie')
  return { accessToken, refreshCookie, sessionId: sessionIdOf(accessToken) }
}

const refreshOn = (server: ServerProcess, refreshCookie: string) =>
  fetch(`${server.base}/auth/refresh`, { method: 'POST', headers: { cookie: `refresh_token=${refreshCookie}` } })

const codeOf = async (response: Response): Promise<string | undefined> =>
  ((await response.json()) as { code?: string }).code

t.test(
  'three instances starting at the same moment on an empty schema all come up; each migration runs once',
  async (t) => {
    const before = await pool.query(
      'select count(*)::int as n from information_schema.tables where table_schema = current_schema()',
    )
    t.equal(before.rows[0].n, 0, 'the schema is empty before the start')

    group = await spawnGroup(['A', 'B', 'C'], { REDIS_URL: redisUrl(REDIS_DB) })
    const results = await Promise.allSettled(group.map((server) => untilHealthy(server)))
    for (const [i, result] of results.entries()) {
      t.equal(result.status, 'fulfilled', `${on(i).name} came up`, {
        reason: result.status === 'rejected' ? String(result.reason) : undefined,
      })
    }
    for (const server of group) {
      t.equal((await fetch(`${server.base}/ready`)).status, 200, `${server.name} is ready (database and Redis answer)`)
    }

    const applied = await pool.query<{ name: string; times: number }>(
      'select name, count(*)::int as times from kysely_migration group by name order by name',
    )
    t.same(
      applied.rows,
      Object.keys(migrations)
        .sort()
        .map((name) => ({ name, times: 1 })),
      'kysely_migration holds each migration exactly once',
    )
    const total = await pool.query('select count(*)::int as n from kysely_migration')
    t.equal(total.rows[0].n, Object.keys(migrations).length, 'and nothing else')
    for (const server of group) t.same(logLinesAtLeast(server, 50), [], `${server.name} logged no error`)
  },
)

t.test('log in on A, refresh on B, log out on C: A refuses its own token on the very next request', async (t) => {
  const email = await signUp(on(0))
  const login = await logIn(on(0), email)
  // A has verified (and remembered) the token it issued; B and C accept it too.
  for (const i of [0, 1, 2]) {
    const me = await fetch(`${on(i).base}/users/me`, { headers: bearer(login.accessToken) })
    t.equal(me.status, 200, `A's access token works on ${on(i).name}`)
  }

  const refresh = await refreshOn(on(1), login.refreshCookie)
  t.equal(refresh.status, 200, "B refreshes with A's refresh cookie")
  const rotated = setCookieValue(refresh, 'refresh_token')
  t.ok(rotated && rotated !== login.refreshCookie, 'B rotates the refresh cookie')
  const { accessToken: fromB } = (await refresh.json()) as { accessToken: string }
  t.equal(sessionIdOf(fromB), login.sessionId, 'in the same session')

  const logout = await fetch(
    `${on(2).base}/auth/logout`,
    json({ scope: 'current' }, { cookie: `refresh_token=${rotated}` }),
  )
  t.equal(logout.status, 204, "C logs the session out with B's refresh cookie")
  t.equal(setCookieValue(logout, 'refresh_token'), '', 'and clears the refresh cookie')

  const afterOnA = await fetch(`${on(0).base}/users/me`, { headers: bearer(login.accessToken) })
  t.equal(afterOnA.status, 401, 'A refuses its own access token on the very next request')
  t.match(afterOnA.headers.get('www-authenticate'), /^Bearer /, 'with a Bearer challenge')
  t.equal(await codeOf(afterOnA), 'SESSION_REVOKED', 'code SESSION_REVOKED')
  const afterOnB = await fetch(`${on(1).base}/users/me`, { headers: bearer(fromB) })
  t.equal(afterOnB.status, 401, 'B refuses the access token it issued')
  t.equal(await codeOf(afterOnB), 'SESSION_REVOKED', 'code SESSION_REVOKED')
  const refreshAgain = await refreshOn(on(0), rotated as string)
  t.equal(refreshAgain.status, 401, 'the refresh cookie is dead on A too')
  t.equal(await codeOf(refreshAgain), 'REFRESH_TOKEN_INVALID', 'code REFRESH_TOKEN_INVALID')
})

t.test(
  '50 parallel refreshes of one token over A, B, C: all 200, one successor, one rotation in the database',
  async (t) => {
    const email = await signUp(on(1))
    const login = await logIn(on(0), email)

    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => refreshOn(on(i), login.refreshCookie)))
    const answers = await Promise.all(
      responses.map(async (response, i) => ({
        on: on(i).name,
        status: response.status,
        refreshCookie: setCookieValue(response, 'refresh_token'),
        body: (await response.json()) as { accessToken?: string; code?: string },
      })),
    )
    const failed = answers.filter((answer) => answer.status !== 200)
    t.same(failed, [], 'every refresh answered 200')
    const successors = new Set(answers.map((answer) => answer.refreshCookie))
    t.equal(successors.size, 1, 'all 50 carry the same successor refresh cookie', { successors: [...successors] })
    const [successor] = successors
    t.ok(successor && successor !== login.refreshCookie, 'a new one')
    t.ok(
      answers.every((answer) => answer.body.accessToken && sessionIdOf(answer.body.accessToken) === login.sessionId),
      'each with an access token of the same session',
    )

    const tokens = await pool.query<{ used: boolean }>(
      'select used_at is not null as used from refresh_tokens where session_id = $1 order by created_at, used_at',
      [login.sessionId],
    )
    t.equal(tokens.rows.length, 2, 'the session has exactly 2 refresh_tokens rows')
    t.same(tokens.rows.map((row) => row.used).sort(), [false, true], 'one used, one not')
    const session = await pool.query<{ revoked: boolean }>(
      'select revoked_at is not null as revoked from sessions where id = $1',
      [login.sessionId],
    )
    t.same(session.rows, [{ revoked: false }], 'the session is not revoked')

    const next = await refreshOn(on(2), successor as string)
    t.equal(next.status, 200, 'the successor refreshes on C')
    const nextCookie = setCookieValue(next, 'refresh_token')
    t.ok(nextCookie && nextCookie !== successor, 'into a new successor')
  },
)

t.test('TOTP: the password on A, the code on B; the same code is refused on C', async (t) => {
  const email = await signUp(on(0))
  const { accessToken } = await logIn(on(0), email)
  const confirmation = await fetch(
    `${on(1).base}/auth/password-confirmation`,
    json({ password: PASSWORD }, bearer(accessToken)),
  )
  const { passwordConfirmationToken } = (await confirmation.json()) as { passwordConfirmationToken: string }
  const confirmed = { ...bearer(accessToken), 'x-password-confirmation': passwordConfirmationToken }
  // Set up on B, confirmed on C: the pending secret is in the shared database.
  const setup = await fetch(`${on(1).base}/users/me/mfa/totp`, json({}, confirmed))
  const { secret } = (await setup.json()) as { secret: string }
  const key = base32Decode(secret)
  const enabled = await fetch(
    `${on(2).base}/users/me/mfa/totp/confirm`,
    json({ code: totp(key, Date.now()) }, confirmed),
  )
  t.equal(enabled.status, 200, 'set up on B, turned on with a code on C')

  const first = await fetch(`${on(0).base}/auth/login`, json({ email, password: PASSWORD }))
  const { mfaToken } = (await first.json()) as { mfaToken: string }
  t.type(mfaToken, 'string', 'A asks for the code')
  // The next step's code: this step's was used to turn TOTP on.
  const code = totp(key, Date.now() + 30_000)
  const verified = await fetch(`${on(1).base}/auth/mfa/verify`, json({ mfaToken, code }))
  t.equal(verified.status, 200, 'B finishes the login A started')
  const second = await fetch(`${on(2).base}/auth/login`, json({ email, password: PASSWORD }))
  const replay = await fetch(
    `${on(2).base}/auth/mfa/verify`,
    json({ mfaToken: ((await second.json()) as { mfaToken: string }).mfaToken, code }),
  )
  t.equal(replay.status, 401, 'C refuses the code B accepted')
  t.equal(await codeOf(replay), 'MFA_CODE_INVALID')
  const again = await fetch(`${on(2).base}/auth/mfa/verify`, json({ mfaToken, code }))
  t.equal(await codeOf(again), 'MFA_TOKEN_INVALID', 'and the used mfaToken')
})

t.test('RATE_LIMIT_MAX and AUTH_RATE_LIMIT_MAX hold across three instances', async (t) => {
  // Three more processes, on the same schema, with low limits and a Redis database of their own.
  const limited = await spawnGroup(["A'", "B'", "C'"], {
    REDIS_URL: redisUrl(REDIS_DB + 1),
    RATE_LIMIT_MAX: String(RATE_LIMIT_MAX),
    AUTH_RATE_LIMIT_MAX: String(AUTH_RATE_LIMIT_MAX),
  })
  await Promise.all(limited.map((server) => untilHealthy(server)))
  const at = (i: number) => limited[i % limited.length] as ServerProcess

  t.test(`RATE_LIMIT_MAX=${RATE_LIMIT_MAX}: ${RATE_LIMIT_MAX} requests pass, the next is 429 on any`, async (t) => {
    // Start-up's health polls counted too: start from zero.
    await limitedRedis.flushdb()
    const statuses = await Promise.all(
      Array.from({ length: RATE_LIMIT_MAX }, async (_, i) => (await fetch(`${at(i).base}/health`)).status),
    )
    t.same(statuses, Array(RATE_LIMIT_MAX).fill(200), `${RATE_LIMIT_MAX} parallel requests spread over A', B', C' pass`)
    for (const i of [0, 1, 2]) {
      const response = await fetch(`${at(i).base}/health`)
      t.equal(response.status, 429, `the next on ${at(i).name} is 429`)
      t.equal(await codeOf(response), 'RATE_LIMITED', 'code RATE_LIMITED')
      const retryAfter = Number(response.headers.get('retry-after'))
      t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After: ${retryAfter}`)
    }
  })

  t.test(`AUTH_RATE_LIMIT_MAX=${AUTH_RATE_LIMIT_MAX}: failed logins of one email from one IP`, async (t) => {
    // A fresh per-minute window, so the previous subtest's 429s do not count here.
    await limitedRedis.flushdb()
    const email = await signUp(at(0))
    for (let i = 0; i < AUTH_RATE_LIMIT_MAX; i++) {
      const wrong = await fetch(`${at(i).base}/auth/login`, json({ email, password: 'not the password at all' }))
      t.equal(wrong.status, 401, `failure ${i + 1} on ${at(i).name} is 401`)
      t.equal(await codeOf(wrong), 'INVALID_CREDENTIALS', 'code INVALID_CREDENTIALS')
    }
    for (const i of [AUTH_RATE_LIMIT_MAX, AUTH_RATE_LIMIT_MAX + 1, AUTH_RATE_LIMIT_MAX + 2]) {
      const right = await fetch(`${at(i).base}/auth/login`, json({ email, password: PASSWORD }))
      t.equal(right.status, 429, `then the right password on ${at(i).name} is 429`)
      t.equal(await codeOf(right), 'RATE_LIMITED', 'code RATE_LIMITED')
      const retryAfter = Number(right.headers.get('retry-after'))
      t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 15 * 60, `Retry-After: ${retryAfter}`)
    }

    // Parallel guesses over the three instances cannot slip past the shared counter.
    const other = await signUp(at(1))
    const guesses = await Promise.all(
      Array.from(
        { length: 2 * AUTH_RATE_LIMIT_MAX },
        async (_, i) =>
          (await fetch(`${at(i).base}/auth/login`, json({ email: other, password: `guess ${i}` }))).status,
      ),
    )
    t.same(
      guesses.sort(),
      [...Array(AUTH_RATE_LIMIT_MAX).fill(401), ...Array(AUTH_RATE_LIMIT_MAX).fill(429)],
      `${2 * AUTH_RATE_LIMIT_MAX} parallel guesses: ${AUTH_RATE_LIMIT_MAX} are checked, the rest 429`,
    )

    // The limit is per email (and IP): another account logs in from the same IP.
    const third = await signUp(at(2))
    const login = await fetch(`${at(1).base}/auth/login`, json({ email: third, password: PASSWORD }))
    t.equal(login.status, 200, 'another email from the same IP still logs in')
  })
})

t.test('kill -9 of one instance during a write load loses no acknowledged write', async (t) => {
  const email = await signUp(on(0))
  const { accessToken } = await logIn(on(0), email)
  const victim = on(2)
  const survivors = [on(0), on(1)]
  const acknowledged: { id: string; title: string; on: string }[] = []
  let attempts = 0
  let killed = false
  let stop = false

  const writer = async () => {
    for (let i = 0; i < 300 && !stop; i++) {
      const n = attempts++
      const server = killed ? (survivors[n % 2] as ServerProcess) : on(n)
      const title = `write ${n}`
      try {
        const response = await fetch(`${server.base}/tasks`, json({ title }, bearer(accessToken)))
        if (response.status === 201) {
          const { task } = (await response.json()) as { task: { id: string } }
          acknowledged.push({ id: task.id, title, on: server.name })
        }
      } catch {
        // The victim died mid-request: not acknowledged.
      }
    }
  }
  const ackedOn = (name: string) => acknowledged.filter((write) => write.on === name).length
  const until = async (condition: () => boolean) => {
    const deadline = Date.now() + 15_000
    while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  }

  const writers = Array.from({ length: 6 }, writer)
  await until(() => acknowledged.length >= 60 && ackedOn(victim.name) >= 10)
  victim.child.kill('SIGKILL')
  killed = true
  const beforeKill = acknowledged.length
  await until(() => acknowledged.length >= beforeKill + 40)
  stop = true
  await Promise.all(writers)
  t.equal((await victim.exit).signal, 'SIGKILL', `${victim.name} was killed`)
  t.ok(ackedOn(victim.name) >= 10, `${ackedOn(victim.name)} writes acknowledged by ${victim.name} before the kill`)
  t.ok(acknowledged.length >= beforeKill + 40, `${acknowledged.length - beforeKill} more acknowledged after it`)

  const missing: typeof acknowledged = []
  for (let start = 0; start < acknowledged.length; start += 20) {
    await Promise.all(
      acknowledged.slice(start, start + 20).map(async (write, i) => {
        const reader = survivors[(start + i) % 2] as ServerProcess
        const response = await fetch(`${reader.base}/tasks/${write.id}`, { headers: bearer(accessToken) })
        const body = response.status === 200 ? ((await response.json()) as { task: { title: string } }) : undefined
        if (body?.task.title !== write.title) missing.push(write)
      }),
    )
  }
  t.same(
    missing,
    [],
    `all ${acknowledged.length} acknowledged tasks are readable on ${survivors.map((s) => s.name).join(' and ')}`,
  )
  for (const server of survivors) {
    t.equal((await fetch(`${server.base}/ready`)).status, 200, `${server.name} is still ready`)
  }
})

t.test('no instance logged an error', async (t) => {
  for (const server of started) t.same(logLinesAtLeast(server, 50), [], `${server.name}: no error or fatal log line`)
})
