// Findings of the penetration test and the fault injection, one class of attack
// per test, each written to fail before its fix.
import t from 'tap'
import { type Account, buildTestApp, cookieHeader, login, signup } from './helper.js'

t.test('a request with an Authorization header is authenticated by it alone, never by cookies', async (t) => {
  const { app } = await buildTestApp(t)
  const victim = await signup(app)
  const cookie = cookieHeader({
    refresh_token: victim.cookies.refresh_token,
    access_token: victim.cookies.access_token,
  })
  const foreign = { origin: 'https://evil.example', 'content-type': 'application/json' }
  // A header that is not a valid bearer token skips the cookie CSRF check, so it must not fall back to the cookies.
  for (const authorization of ['Basic eDp5', 'Bearer', 'Bearer not-a-jwt', 'Token abc', 'Bearer a b']) {
    for (const scope of ['all', 'others']) {
      const response = await app.inject({
        method: 'POST',
        url: '/auth/logout',
        headers: { ...foreign, authorization, cookie },
        payload: { scope },
      })
      t.equal(response.statusCode, 401, `${authorization} / ${scope}: 401`)
    }
    const me = await app.inject({ url: '/users/me', headers: { authorization, cookie } })
    t.equal(me.statusCode, 401, `${authorization}: /users/me is 401, not served from the cookie`)
  }
  const still = await app.inject({ url: '/users/me', headers: victim.bearer })
  t.equal(still.statusCode, 200, 'no session was revoked')
})

t.test('the Bearer scheme name is case-insensitive (RFC 9110)', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
    const me = await app.inject({ url: '/users/me', headers: { authorization: `${scheme} ${account.accessToken}` } })
    t.equal(me.statusCode, 200, scheme)
  }
  const logout = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: { authorization: `bearer ${account.accessToken}`, 'content-type': 'application/json' },
    payload: { scope: 'all' },
  })
  t.equal(logout.statusCode, 204)
  const after = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(after.statusCode, 401, 'logout by a lower-case bearer header ended the session')
})

t.test('active sessions per user are capped; a new sign-in ends the least recently used', async (t) => {
  const { app, clock } = await buildTestApp(t, { MAX_SESSIONS_PER_USER: '3' })
  const first = await signup(app)
  const sessions = [first]
  for (let i = 0; i < 2; i++) {
    clock.advance(1000)
    sessions.push(await login(app, first.email))
  }
  // The first session is used again (activity is recorded at most once a minute), so the second is now the least recent.
  clock.advance(61_000)
  t.equal((await app.inject({ url: '/users/me', headers: first.bearer })).statusCode, 200)
  const fourth = await login(app, first.email)
  const status = async (account: Account) =>
    (await app.inject({ url: '/users/me', headers: account.bearer })).statusCode
  t.equal(await status(first), 200, 'recently used: kept')
  t.equal(await status(sessions[1] as Account), 401, 'least recently used: ended')
  t.equal(await status(sessions[2] as Account), 200)
  t.equal(await status(fourth), 200, 'the new one')
  const list = await app.inject({ url: '/auth/sessions', headers: fourth.bearer })
  t.equal(list.json().items.length, 3)
})

t.test('password hashing has a bounded line: beyond HASH_QUEUE_MAX, 503 SERVER_BUSY at once', async (t) => {
  // All ten logins must reach the line while the first is still hashing. Each
  // comes from its own IP for its own email (one of them the account's), so their
  // failed-login counters are different rows:
  // on PostgreSQL, ten counts of one IP's row wait on each other's commits
  // (tens of ms each on a busy disk), and the tenth login arrived after a hash
  // had finished. The hash is slow too (about 0.2 s here).
  const { app } = await buildTestApp(t, {
    HASH_CONCURRENCY: '1',
    HASH_QUEUE_MAX: '2',
    ARGON2_MEMORY_KIB: '32768',
    ARGON2_TIME_COST: '8',
  })
  const account = await signup(app)
  const attempts = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      app.inject({
        method: 'POST',
        url: '/auth/login',
        remoteAddress: `10.0.0.${i + 1}`,
        payload: { email: i === 1 ? account.email : `nobody-${i}@example.com`, password: 'x'.repeat(1000) },
      }),
    ),
  )
  const statuses = attempts.map((response) => response.statusCode).sort()
  // One hashing, two waiting: three are checked (401), the other seven refused at once.
  t.same(statuses, [401, 401, 401, 503, 503, 503, 503, 503, 503, 503])
  const busy = attempts.find((response) => response.statusCode === 503)
  t.equal(busy?.json().code, 'SERVER_BUSY')
  t.equal(busy?.headers['retry-after'], '1')
  const after = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: account.password },
  })
  t.equal(after.statusCode, 200, 'once the line drains, logins go through')
})
