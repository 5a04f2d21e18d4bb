// Limits shared through Redis (REDIS_URL), and what happens while Redis is down:
// the per-IP request limit fails open, the failed-login limits never do (they
// count in memory meanwhile), and /ready says 503.
import { Redis } from 'ioredis'
import t from 'tap'
import { buildTestApp, signup } from './helper.js'

/** A Redis logical database of its own for this file (the multi-instance test uses others), emptied first. */
const REDIS_DB = 11
const REDIS_URL = `redis://127.0.0.1:6379/${REDIS_DB}`

t.before(async () => {
  const client = new Redis(REDIS_URL)
  await client.flushdb()
  client.disconnect()
})

const wrongLogin = (email: string) => ({
  method: 'POST' as const,
  url: '/auth/login',
  payload: { email, password: 'wrong password, surely' },
})

t.test('two instances on one Redis share the per-IP limit and the failed-login limits', async (t) => {
  const env = { REDIS_URL, RATE_LIMIT_MAX: '12', AUTH_RATE_LIMIT_MAX: '3' }
  const a = await buildTestApp(t, env)
  const b = await buildTestApp(t, env)
  const account = await signup(a.app, { headers: { 'x-test': 'a' } })

  // Failed logins of one email from one IP: 3 in all, whichever instance answers.
  const statuses: number[] = []
  for (const app of [a.app, b.app, a.app]) statuses.push((await app.inject(wrongLogin(account.email))).statusCode)
  t.same(statuses, [401, 401, 401])
  const right = await b.app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: account.password },
  })
  t.equal(right.statusCode, 429, 'the 4th attempt, on the other instance, waits even with the right password')
  t.equal(right.json().code, 'RATE_LIMITED')
  t.ok(Number(right.headers['retry-after']) > 0)

  // The per-IP limit (12 a minute) counts the requests of both instances: 5 used above (signup + 4 logins).
  const more: number[] = []
  for (let i = 0; i < 8; i++) more.push((await (i % 2 ? a.app : b.app).inject({ url: '/health' })).statusCode)
  t.same(more.slice(0, 7), [200, 200, 200, 200, 200, 200, 200])
  t.equal(more[7], 429, 'the 13th request of this IP is refused, counted across both')
})

t.test('with Redis down: requests pass, failed logins are still limited, /ready is 503', async (t) => {
  // Nothing listens on port 1.
  const { app } = await buildTestApp(t, {
    REDIS_URL: 'redis://127.0.0.1:1',
    RATE_LIMIT_MAX: '3',
    AUTH_RATE_LIMIT_MAX: '2',
  })
  const account = await signup(app)
  const health = await Promise.all([1, 2, 3, 4, 5].map(() => app.inject({ url: '/health' })))
  t.same(
    health.map((response) => response.statusCode),
    [200, 200, 200, 200, 200],
    'the per-IP limit fails open (RATE_LIMIT_MAX=3)',
  )
  const ready = await app.inject({ url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().code, 'SERVICE_UNAVAILABLE')
  t.equal((await app.inject(wrongLogin(account.email))).statusCode, 401)
  t.equal((await app.inject(wrongLogin(account.email))).statusCode, 401)
  const third = await app.inject(wrongLogin(account.email))
  t.equal(third.statusCode, 429, 'the failed-login limit holds in memory')
})
