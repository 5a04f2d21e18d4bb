// Refresh-token rotation, the grace window, reuse detection, expiry, AUTO_REFRESH.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { buildTestApp, cookieHeader, cookiesOf, signup } from './helper.js'

type SetCookie = { name: string; value: string; path?: string; maxAge?: number; sameSite?: string; expires?: Date }

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

const refresh = (app: FastifyInstance, refreshCookie: string | undefined, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: cookieHeader({ refresh_token: refreshCookie }), ...headers },
  })

const refreshCookieOf = (response: LightMyRequestResponse) => cookiesOf(response).refresh_token

function assertCleared(t: Test, response: LightMyRequestResponse) {
  const cookies = response.cookies as SetCookie[]
  for (const name of ['access_token', 'refresh_token', 'password_confirmation_token']) {
    const cookie = cookies.find((entry) => entry.name === name)
    t.ok(
      cookie &&
        cookie.value === '' &&
        (cookie.maxAge === 0 || (cookie.expires && cookie.expires.getTime() <= Date.now())),
      `${name} cleared`,
    )
  }
}

t.test('refresh rotates both cookies and answers a new access token', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const response = await refresh(app, account.cookies.refresh_token)
  t.equal(response.statusCode, 200)
  t.same(Object.keys(response.json()).sort(), ['accessToken', 'accessTokenExpiresAt'])
  t.notMatch(response.body, /refresh/i, 'the refresh token is never in a body')
  const next = cookiesOf(response)
  t.ok(next.refresh_token && next.refresh_token !== account.cookies.refresh_token, 'new refresh token')
  t.ok(next.access_token, 'new access cookie')
  const me = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${response.json().accessToken}` } })
  t.equal(me.statusCode, 200)
  const refreshCookie = (response.cookies as SetCookie[]).find((cookie) => cookie.name === 'refresh_token')
  t.match(refreshCookie, { path: '/auth', sameSite: 'Strict', httpOnly: true, secure: true })
  const chained = await refresh(app, next.refresh_token)
  t.equal(chained.statusCode, 200, 'the successor rotates in turn')
})

t.test('the database never holds a refresh token in clear', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const rotated = await refresh(app, account.cookies.refresh_token)
  const tokens = [account.cookies.refresh_token, refreshCookieOf(rotated)].map((cookie) =>
    decodeURIComponent(cookie ?? '').replace(/\.[^.]+$/, ''),
  )
  const rows = await app.db.selectFrom('refresh_tokens').selectAll().execute()
  t.equal(rows.length, 2)
  const dump = JSON.stringify(rows)
  for (const token of tokens) {
    t.equal(token.length, 43, '256-bit token')
    t.notOk(dump.includes(token), 'not stored in clear')
  }
})

t.test('within the grace window a used token returns the same successor', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const first = await refresh(app, account.cookies.refresh_token)
  // The first response was "lost": the client retries with the old token, half
  // way through the default 10 s window.
  clock.advance(5 * SECOND)
  const retry = await refresh(app, account.cookies.refresh_token)
  t.equal(first.statusCode, 200)
  t.equal(retry.statusCode, 200)
  t.equal(refreshCookieOf(retry), refreshCookieOf(first), 'same successor')
  const onward = await refresh(app, refreshCookieOf(retry))
  t.equal(onward.statusCode, 200, 'the session lives on')
})

t.test('six parallel refreshes with one token all succeed with one successor', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const responses = await Promise.all(Array.from({ length: 6 }, () => refresh(app, account.cookies.refresh_token)))
  t.same(
    responses.map((response) => response.statusCode),
    [200, 200, 200, 200, 200, 200],
  )
  const successors = new Set(responses.map(refreshCookieOf))
  t.equal(successors.size, 1, 'one successor for all')
  const sessions = await app.db.selectFrom('sessions').selectAll().execute()
  t.equal(sessions.length, 1)
  t.equal(sessions[0]?.revoked_at, null, 'session still active')
  const tokens = await app.db.selectFrom('refresh_tokens').selectAll().execute()
  t.equal(tokens.length, 2, 'one rotation happened')
})

t.test('a replay after the grace window revokes the whole session', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const first = await refresh(app, account.cookies.refresh_token)
  const newAccess = first.json().accessToken
  clock.advance(10 * SECOND + 1)
  const replay = await refresh(app, account.cookies.refresh_token)
  t.equal(replay.statusCode, 401)
  t.equal(replay.json().code, 'REFRESH_TOKEN_REUSED')
  assertCleared(t, replay)
  const successor = await refresh(app, refreshCookieOf(first))
  t.equal(successor.statusCode, 401, 'the legitimate successor dies with the session')
  const byOldAccess = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(byOldAccess.json().code, 'SESSION_REVOKED', 'the original access token is refused')
  const byNewAccess = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${newAccess}` } })
  t.equal(byNewAccess.json().code, 'SESSION_REVOKED', 'the rotated access token is refused')
  const sessions = await app.inject({ url: '/auth/sessions', headers: account.bearer })
  t.equal(sessions.statusCode, 401)
})

t.test('a replay in one session leaves the user’s other sessions alone', async (t) => {
  const { app, clock } = await buildTestApp(t, { REFRESH_REUSE_GRACE: '1s' })
  const account = await signup(app)
  const other = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: account.password },
  })
  await refresh(app, account.cookies.refresh_token)
  clock.advance(SECOND + 1)
  t.equal((await refresh(app, account.cookies.refresh_token)).json().code, 'REFRESH_TOKEN_REUSED')
  const me = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${other.json().accessToken}` } })
  t.equal(me.statusCode, 200)
})

t.test('unknown, missing, tampered and expired refresh tokens', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const signed = account.cookies.refresh_token ?? ''
  const cases: Array<[string, string | undefined, string]> = [
    ['missing', undefined, 'REFRESH_TOKEN_INVALID'],
    ['unsigned', decodeURIComponent(signed).replace(/\.[^.]+$/, ''), 'REFRESH_TOKEN_INVALID'],
    [
      'well-formed but unknown',
      encodeURIComponent(`${'A'.repeat(43)}.${decodeURIComponent(signed).split('.').pop()}`),
      'REFRESH_TOKEN_INVALID',
    ],
    ['garbage', 'x'.repeat(5000), 'REFRESH_TOKEN_INVALID'],
  ]
  for (const [name, cookie, code] of cases) {
    const response = await refresh(app, cookie)
    t.equal(response.statusCode, 401, name)
    t.equal(response.json().code, code, name)
    assertCleared(t, response)
  }
  // The default JWT_REFRESH_TOKEN_DURATION, 7 days, has passed.
  clock.advance(7 * DAY)
  const expired = await refresh(app, signed)
  t.equal(expired.statusCode, 401)
  t.equal(expired.json().code, 'REFRESH_TOKEN_EXPIRED')
  assertCleared(t, expired)
})

t.test('rotation never passes the session’s absolute end (SESSION_MAX_AGE)', async (t) => {
  const { app, clock } = await buildTestApp(t, { SESSION_MAX_AGE: '1h', JWT_REFRESH_TOKEN_DURATION: '1d' })
  const account = await signup(app)
  const loginCookies = (
    await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email: account.email, password: account.password },
    })
  ).cookies as SetCookie[]
  const loginMaxAge = loginCookies.find((cookie) => cookie.name === 'refresh_token')?.maxAge ?? 0
  // A few seconds of slack for the real time the test takes.
  t.ok(loginMaxAge <= 3600 && loginMaxAge > 3590, `cookie Max-Age ${loginMaxAge} capped at the session end (1h)`)
  clock.advance(20 * MINUTE)
  const rotated = await refresh(app, account.cookies.refresh_token)
  t.equal(rotated.statusCode, 200)
  const maxAge = (rotated.cookies as SetCookie[]).find((cookie) => cookie.name === 'refresh_token')?.maxAge ?? 0
  t.ok(maxAge <= 2400 && maxAge > 2390, `refresh cookie Max-Age ${maxAge} stops at the session end (40 min left)`)
  clock.advance(40 * MINUTE)
  const late = await refresh(app, refreshCookieOf(rotated))
  t.equal(late.statusCode, 401)
  t.equal(late.json().code, 'REFRESH_TOKEN_EXPIRED')
})

t.test('AUTO_REFRESH serves a cookie request whose access token expired, with rotated cookies', async (t) => {
  const { app, clock } = await buildTestApp(t, { AUTO_REFRESH: 'true' })
  const account = await signup(app)
  const refreshCookie = (
    (
      await app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { email: account.email, password: account.password },
      })
    ).cookies as SetCookie[]
  ).find((cookie) => cookie.name === 'refresh_token')
  t.equal(refreshCookie?.path, '/', 'with AUTO_REFRESH the refresh cookie is sent everywhere')
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'valid at first')
  // Past the default JWT_ACCESS_TOKEN_DURATION (15 minutes), within the refresh token's 7 days.
  clock.advance(15 * MINUTE + SECOND)
  const expiredAccess = await app.inject({ url: '/users/me', headers: { cookie: cookieHeader(account.cookies) } })
  t.equal(expiredAccess.statusCode, 200, 'served')
  const rotated = cookiesOf(expiredAccess)
  t.ok(rotated.access_token && rotated.refresh_token, 'rotated cookies')
  t.not(rotated.refresh_token, account.cookies.refresh_token)
  const noAccess = await app.inject({
    url: '/users/me',
    headers: { cookie: cookieHeader({ refresh_token: rotated.refresh_token }) },
  })
  t.equal(noAccess.statusCode, 200, 'a browser that dropped the expired access cookie is served too')
  const bearer = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(bearer.json().code, 'ACCESS_TOKEN_EXPIRED', 'bearer clients refresh themselves')
})

t.test('without AUTO_REFRESH an expired cookie is 401 ACCESS_TOKEN_EXPIRED', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const cookie = cookieHeader(account.cookies)
  t.equal((await app.inject({ url: '/users/me', headers: { cookie } })).statusCode, 200, 'valid at first')
  clock.advance(15 * MINUTE + SECOND)
  const response = await app.inject({ url: '/users/me', headers: { cookie } })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'ACCESS_TOKEN_EXPIRED')
})
