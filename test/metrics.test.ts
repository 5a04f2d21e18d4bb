// GET /metrics: off (404) without METRICS_TOKEN, refused without the right
// bearer token, and, scraped and parsed with a real Prometheus text parser
// (parse-prometheus-text-format) around a scripted login / refresh / reuse
// sequence, the counters move by exactly what happened.
import type { FastifyInstance } from 'fastify'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import t from 'tap'
import { buildTestApp, cookieHeader, cookiesOf, onPostgres, PASSWORD, signup, uniqueEmail } from './helper.js'

const TOKEN = 'metrics-token-0123456789abcdef0123456789abcdef'
const METRICS_ENV = { METRICS_TOKEN: TOKEN }

interface Sample {
  value?: string
  count?: string
  sum?: string
  buckets?: Record<string, string>
  labels?: Record<string, string>
}
interface Family {
  name: string
  help: string
  type: string
  metrics: Sample[]
}

async function scrape(app: FastifyInstance): Promise<Family[]> {
  const response = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  if (response.statusCode !== 200) throw new Error(`scrape: ${response.statusCode} ${response.body}`)
  return parsePrometheusTextFormat(response.body) as Family[]
}

/** The value of one series (a counter's or gauge's value, a histogram's count); 0 when absent. */
function seriesValue(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const family = families.find((entry) => entry.name === name)
  const sample = family?.metrics.find((entry) =>
    Object.entries(labels).every(([key, value]) => entry.labels?.[key] === value),
  )
  return Number(sample?.value ?? sample?.count ?? 0)
}

const refresh = (app: FastifyInstance, refreshCookie: string | undefined) =>
  app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: cookieHeader({ refresh_token: refreshCookie }) },
  })

t.test('off without METRICS_TOKEN: 404 like any unknown path', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(response.statusCode, 404)
  const unknown = await app.inject({ url: '/no-such-path', headers: { authorization: `Bearer ${TOKEN}` } })
  t.same(response.json(), unknown.json(), 'the very answer of an unknown path')
  t.equal(app.metrics.enabled, false)
})

t.test('on: only Authorization: Bearer <METRICS_TOKEN>', async (t) => {
  const { app } = await buildTestApp(t, METRICS_ENV)
  const cases: [string, Record<string, string>][] = [
    ['no credentials', {}],
    ['a wrong token', { authorization: `Bearer ${TOKEN}x` }],
    ['a prefix of the token', { authorization: `Bearer ${TOKEN.slice(0, 10)}` }],
    ['another scheme', { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }],
    ['the token as a cookie', { cookie: `access_token=${TOKEN}` }],
  ]
  for (const [name, headers] of cases) {
    const response = await app.inject({ url: '/metrics', headers })
    t.equal(response.statusCode, 401, name)
    t.equal(response.json().code, 'AUTH_REQUIRED', name)
    t.notMatch(response.body, /latchkey_/, `${name}: no metric in the answer`)
  }
  const ok = await app.inject({ url: '/metrics', headers: { authorization: `bearer ${TOKEN}` } })
  t.equal(ok.statusCode, 200, 'the scheme name is case-insensitive')
  t.match(ok.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(ok.headers['cache-control'], 'no-store')
})

t.test('a short METRICS_TOKEN stops start-up', async (t) => {
  await t.rejects(buildTestApp(t, { METRICS_TOKEN: 'short' }), { message: /^METRICS_TOKEN: must be at least 32 bytes/ })
})

t.test('counters move by what a login / refresh / reuse sequence did', async (t) => {
  const { app, clock } = await buildTestApp(t, METRICS_ENV)
  const account = await signup(app)
  const before = await scrape(app)

  const login = (email: string, password: string) =>
    app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  const signedIn = await login(account.email, PASSWORD)
  t.equal(signedIn.statusCode, 200)
  t.equal((await login(account.email, 'not the password at all')).statusCode, 401)
  t.equal((await login(uniqueEmail('nobody'), PASSWORD)).statusCode, 401)

  const first = cookiesOf(signedIn).refresh_token
  const rotated = await refresh(app, first)
  t.equal(rotated.statusCode, 200)
  t.equal((await refresh(app, first)).statusCode, 200, 'a retry within the grace window')
  clock.advance(60_000)
  const reused = await refresh(app, first)
  t.equal(reused.json().code, 'REFRESH_TOKEN_REUSED')
  t.equal((await refresh(app, 'not-a-token')).json().code, 'REFRESH_TOKEN_INVALID')
  t.equal((await app.inject({ url: '/lists/some-id-1234', headers: account.bearer })).statusCode, 404)
  t.equal((await app.inject({ url: '/no/such/path/4711' })).statusCode, 404)

  const after = await scrape(app)
  const delta = (name: string, labels: Record<string, string> = {}) =>
    seriesValue(after, name, labels) - seriesValue(before, name, labels)

  t.same(
    Object.fromEntries(
      ['ok', 'wrong_password', 'unknown_email', 'throttled', 'mfa', 'disabled'].map((outcome) => [
        outcome,
        delta('latchkey_logins_total', { outcome }),
      ]),
    ),
    { ok: 1, wrong_password: 1, unknown_email: 1, throttled: 0, mfa: 0, disabled: 0 },
    'logins by outcome',
  )
  t.same(
    Object.fromEntries(
      ['rotated', 'grace', 'reused', 'expired', 'invalid'].map((outcome) => [
        outcome,
        delta('latchkey_refreshes_total', { outcome }),
      ]),
    ),
    { rotated: 1, grace: 1, reused: 1, expired: 0, invalid: 1 },
    'refreshes by outcome',
  )
  t.equal(delta('latchkey_sessions_revoked_total', { reason: 'refresh_reuse' }), 1, 'the reused session was revoked')
  t.equal(delta('latchkey_security_events_total', { type: 'login_succeeded' }), 1)
  t.equal(delta('latchkey_security_events_total', { type: 'login_failed' }), 1, 'only the known email is an event')
  t.equal(delta('latchkey_security_events_total', { type: 'refresh_reuse_detected' }), 1)

  // Requests by route pattern and status, never by raw URL.
  const requests = (route: string, status: string) =>
    delta('latchkey_http_requests_total', { method: 'POST', route, status })
  t.equal(requests('/auth/login', '200'), 1)
  t.equal(requests('/auth/login', '401'), 2)
  t.equal(requests('/auth/refresh', '200'), 2)
  t.equal(requests('/auth/refresh', '401'), 2)
  // The parser folds a labelled histogram's series into one (it keeps labels for
  // unlabelled histograms only), so the latency histogram is checked for its
  // type here, and its per-route counts through the counter above.
  t.equal(after.find((family) => family.name === 'latchkey_http_request_duration_seconds')?.type, 'HISTOGRAM')
  t.equal(delta('latchkey_http_requests_total', { method: 'GET', route: '/lists/:id', status: '404' }), 1)
  t.equal(delta('latchkey_http_requests_total', { method: 'GET', route: '(unmatched)', status: '404' }), 1)
  const routes = new Set(
    after.find((family) => family.name === 'latchkey_http_requests_total')?.metrics.map((m) => m.labels?.route),
  )
  t.notOk(
    [...routes].some((route) => /some-id|4711/.test(route ?? '')),
    'no raw URL became a label',
  )

  // The argon2 line, the event loop, the database pool and the mail queue.
  t.ok(delta('latchkey_password_hash_wait_seconds') >= 3, 'each login waited for (and got) a hashing slot')
  t.equal(seriesValue(after, 'latchkey_password_hash_queue_length'), 0)
  t.ok(
    after.some((family) => family.name === 'nodejs_eventloop_lag_p99_seconds'),
    'event-loop delay',
  )
  t.equal(
    after.some((family) => family.name === 'latchkey_db_pool_connections'),
    onPostgres,
    'PostgreSQL pool gauges on PostgreSQL only',
  )
  if (onPostgres) t.ok(seriesValue(after, 'latchkey_db_pool_connections') >= 1)
  t.ok(
    after.some((family) => family.name === 'latchkey_mail_queue_length'),
    'mail queue length',
  )
  t.ok(
    after.some((family) => family.name === 'latchkey_mail_failed_jobs'),
    'given-up mails',
  )
})

t.test('throttled logins are counted, and recorded for the account', async (t) => {
  const { app, clock } = await buildTestApp(t, { ...METRICS_ENV, AUTH_RATE_LIMIT_MAX: '2' })
  const account = await signup(app)
  const before = await scrape(app)
  const attempt = () =>
    app.inject({ method: 'POST', url: '/auth/login', payload: { email: account.email, password: 'wrong password!' } })
  t.equal((await attempt()).statusCode, 401)
  t.equal((await attempt()).statusCode, 401)
  t.equal((await attempt()).statusCode, 429)
  t.equal((await attempt()).statusCode, 429)
  const after = await scrape(app)
  const delta = (outcome: string) =>
    seriesValue(after, 'latchkey_logins_total', { outcome }) - seriesValue(before, 'latchkey_logins_total', { outcome })
  t.equal(delta('wrong_password'), 2)
  t.equal(delta('throttled'), 2, 'each throttled attempt is counted')
  const types = await app.db
    .selectFrom('security_events')
    .select('type')
    .where('user_id', '=', account.userId)
    .orderBy('created_at')
    .execute()
  t.same(
    types.map((row) => row.type).sort(),
    ['login_failed', 'login_failed', 'login_throttled', 'signup'],
    'the events of the account: a throttled flood leaves one row a minute',
  )
  clock.advance(61_000)
  t.equal((await attempt()).statusCode, 429)
  const throttledEvents = await app.db
    .selectFrom('security_events')
    .select('id')
    .where('user_id', '=', account.userId)
    .where('type', '=', 'login_throttled')
    .execute()
  t.equal(throttledEvents.length, 2, 'a minute later, another')
})
