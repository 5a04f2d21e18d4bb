// Sessions, logout scopes, password confirmation and the /users/me routes.
import t from 'tap'
import { deriveKeys } from '../src/auth/keys.js'
import {
  buildTestApp,
  confirmPassword,
  cookieHeader,
  cookiesOf,
  login,
  PASSWORD,
  signup,
  uniqueEmail,
} from './helper.js'
import { decodeJwt, forgeJwt } from './jwt.js'

t.test('sessions: list the active ones, mark the current one, revoke one', async (t) => {
  const { app } = await buildTestApp(t)
  const phone = await signup(app, { headers: { 'user-agent': 'Phone/1.0' } })
  const laptop = await login(app, phone.email, PASSWORD, { 'user-agent': 'Laptop/2.0' })
  const list = await app.inject({ url: '/auth/sessions', headers: phone.bearer })
  t.equal(list.statusCode, 200)
  const items = list.json().items as Array<Record<string, unknown>>
  t.equal(items.length, 2)
  t.same(Object.keys(items[0] ?? {}).sort(), [
    'createdAt',
    'current',
    'device',
    'expiresAt',
    'id',
    'ip',
    'lastUsedAt',
    'signInMethod',
    'userAgent',
  ])
  const current = items.find((item) => item.current)
  t.equal(current?.userAgent, 'Phone/1.0')
  t.equal(current?.device, 'Phone', 'a client bowser does not know: the first word of its user agent')
  t.equal(current?.ip, '127.0.0.1')
  t.equal(current?.signInMethod, 'signup', 'the session of a sign-up says so')
  const other = items.find((item) => !item.current)
  t.equal(other?.userAgent, 'Laptop/2.0')
  t.equal(other?.signInMethod, 'password', 'a password login says so')

  const revoke = await app.inject({ method: 'DELETE', url: `/auth/sessions/${other?.id}`, headers: phone.bearer })
  t.equal(revoke.statusCode, 204)
  t.equal((await app.inject({ url: '/users/me', headers: laptop.bearer })).json().code, 'SESSION_REVOKED')
  const after = await app.inject({ url: '/auth/sessions', headers: phone.bearer })
  t.equal(after.json().items.length, 1, 'revoked sessions are not listed')
  const again = await app.inject({ method: 'DELETE', url: `/auth/sessions/${other?.id}`, headers: phone.bearer })
  t.equal(again.statusCode, 404, 'revoking twice is 404')
})

t.test('sessions: each names its device, from its user agent', async (t) => {
  const { app } = await buildTestApp(t)
  const firefox = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'
  const account = await signup(app, { headers: { 'user-agent': firefox } })
  await login(app, account.email, PASSWORD, { 'user-agent': '' })
  const items = (await app.inject({ url: '/auth/sessions', headers: account.bearer })).json().items as Array<
    Record<string, unknown>
  >
  t.match(
    items.find((item) => item.current),
    { userAgent: firefox, device: 'Firefox on Windows' },
  )
  t.match(
    items.find((item) => !item.current),
    { device: 'Unknown device' },
    'no user agent',
  )
})

t.test("another user's session id is 404, and stays alive", async (t) => {
  const { app } = await buildTestApp(t)
  const alice = await signup(app)
  const mallory = await signup(app)
  const aliceSession = decodeJwt(alice.accessToken).claims.sid as string
  for (const id of [aliceSession, 'does-not-exist']) {
    const response = await app.inject({ method: 'DELETE', url: `/auth/sessions/${id}`, headers: mallory.bearer })
    t.equal(response.statusCode, 404)
    t.equal(response.json().code, 'NOT_FOUND')
  }
  t.equal((await app.inject({ url: '/users/me', headers: alice.bearer })).statusCode, 200)
  const list = await app.inject({ url: '/auth/sessions', headers: mallory.bearer })
  t.notOk(JSON.stringify(list.json()).includes(aliceSession), 'never listed')
})

t.test('revoking the current session clears its cookies', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const sid = decodeJwt(account.accessToken).claims.sid as string
  const response = await app.inject({
    method: 'DELETE',
    url: `/auth/sessions/${sid}`,
    headers: { cookie: cookieHeader(account.cookies) },
  })
  t.equal(response.statusCode, 204)
  t.same(cookiesOf(response), { access_token: '', refresh_token: '', password_confirmation_token: '' })
})

t.test('logout scopes', async (t) => {
  const { app } = await buildTestApp(t)
  const logout = (headers: Record<string, string>, scope?: string) =>
    app.inject({ method: 'POST', url: '/auth/logout', headers, ...(scope ? { payload: { scope } } : {}) })

  await t.test('current: always 204, clears cookies, idempotent', async (t) => {
    const account = await signup(app)
    const first = await logout({ cookie: cookieHeader(account.cookies) })
    t.equal(first.statusCode, 204)
    t.same(cookiesOf(first), { access_token: '', refresh_token: '', password_confirmation_token: '' })
    t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).json().code, 'SESSION_REVOKED')
    t.equal((await logout({ cookie: cookieHeader(account.cookies) })).statusCode, 204, 'again')
    t.equal((await logout({})).statusCode, 204, 'with no credentials at all')
    const refresh = await app.inject({
      method: 'POST',
      url: '/auth/refresh',
      headers: { cookie: cookieHeader({ refresh_token: account.cookies.refresh_token }) },
    })
    t.equal(refresh.statusCode, 401, 'the refresh token died with the session')
  })

  await t.test('current with only the refresh cookie', async (t) => {
    const account = await signup(app)
    const response = await logout({ cookie: cookieHeader({ refresh_token: account.cookies.refresh_token }) })
    t.equal(response.statusCode, 204)
    t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).json().code, 'SESSION_REVOKED')
  })

  await t.test('others: keeps this session, revokes the rest, keeps cookies', async (t) => {
    const account = await signup(app)
    const second = await login(app, account.email)
    const third = await login(app, account.email)
    const response = await logout(account.bearer, 'others')
    t.equal(response.statusCode, 204)
    t.same(cookiesOf(response), {}, 'no cookies touched')
    t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200)
    for (const other of [second, third]) {
      t.equal((await app.inject({ url: '/users/me', headers: other.bearer })).json().code, 'SESSION_REVOKED')
    }
  })

  await t.test('all: revokes every session and clears cookies', async (t) => {
    const account = await signup(app)
    const second = await login(app, account.email)
    const response = await logout({ cookie: cookieHeader({ refresh_token: account.cookies.refresh_token }) }, 'all')
    t.equal(response.statusCode, 204)
    t.same(cookiesOf(response), { access_token: '', refresh_token: '', password_confirmation_token: '' })
    for (const session of [account, second]) {
      t.equal((await app.inject({ url: '/users/me', headers: session.bearer })).json().code, 'SESSION_REVOKED')
    }
  })

  await t.test('others and all need a valid access token or refresh cookie', async (t) => {
    const account = await signup(app)
    for (const scope of ['others', 'all']) {
      const anonymous = await logout({}, scope)
      t.equal(anonymous.statusCode, 401, `${scope} without credentials`)
      const forged = await logout({ authorization: 'Bearer x.y.z' }, scope)
      t.equal(forged.statusCode, 401, `${scope} with a bad token`)
    }
    t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'nothing revoked')
    const bad = await logout(account.bearer, 'everything')
    t.equal(bad.statusCode, 400)
    t.equal(bad.json().code, 'VALIDATION_FAILED')
  })
})

t.test('password confirmation: issue, use, bound to its session', async (t) => {
  const { app, config, clock } = await buildTestApp(t)
  const account = await signup(app)
  const response = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation',
    headers: account.bearer,
    payload: { password: account.password },
  })
  t.equal(response.statusCode, 200)
  const { passwordConfirmationToken, expiresAt } = response.json()
  t.ok(Math.abs(Date.parse(expiresAt) - clock.now() - 5 * 60_000) < 5000, 'five minutes')
  const cookie = (response.cookies as Array<{ name: string; path: string; sameSite: string; maxAge: number }>).find(
    (entry) => entry.name === 'password_confirmation_token',
  )
  t.match(cookie, { path: '/', sameSite: 'Lax', maxAge: 300 })

  const patch = (headers: Record<string, string>, payload: object = { displayName: 'Renamed' }) =>
    app.inject({ method: 'PATCH', url: '/users/me', headers, payload })

  const without = await patch(account.bearer)
  t.equal(without.statusCode, 403)
  t.equal(without.json().code, 'PASSWORD_CONFIRMATION_REQUIRED')
  const byHeader = await patch({ ...account.bearer, 'x-password-confirmation': passwordConfirmationToken })
  t.equal(byHeader.statusCode, 200)
  t.equal(byHeader.json().user.displayName, 'Renamed')
  const byCookie = await patch(
    { cookie: cookieHeader({ ...account.cookies, ...cookiesOf(response) }) },
    { displayName: 'By cookie' },
  )
  t.equal(byCookie.statusCode, 200)

  const otherSession = await login(app, account.email)
  const elsewhere = await patch({ ...otherSession.bearer, 'x-password-confirmation': passwordConfirmationToken })
  t.equal(elsewhere.json().code, 'PASSWORD_CONFIRMATION_REQUIRED', "another session's token is refused")
  const asAccess = await patch({
    'x-password-confirmation': passwordConfirmationToken,
    ...account.bearer,
    authorization: `Bearer ${passwordConfirmationToken}`,
  })
  t.equal(asAccess.statusCode, 401, 'a confirmation token is not an access token')
  const accessAsConfirmation = await patch({ ...account.bearer, 'x-password-confirmation': account.accessToken })
  t.equal(accessAsConfirmation.json().code, 'PASSWORD_CONFIRMATION_REQUIRED', 'an access token is not a confirmation')
  const { claims } = decodeJwt(passwordConfirmationToken)
  const forged = forgeJwt({ ...claims, exp: (claims.exp as number) + 3600 }, deriveKeys(config).accessToken)
  t.equal(
    (await patch({ ...account.bearer, 'x-password-confirmation': forged })).statusCode,
    403,
    'signed with the access key',
  )
})

t.test('password confirmation: wrong password, refresh, expiry', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const wrong = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation',
    headers: account.bearer,
    payload: { password: 'not my password' },
  })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'INVALID_CREDENTIALS')
  const token = await confirmPassword(app, account)
  clock.advance(60_000)
  const refreshed = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation/refresh',
    headers: { ...account.bearer, 'x-password-confirmation': token },
  })
  t.equal(refreshed.statusCode, 200)
  const fresh = refreshed.json().passwordConfirmationToken
  t.ok((decodeJwt(fresh).claims.exp as number) > (decodeJwt(token).claims.exp as number), 'a fresh lifetime')
  const noToken = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation/refresh',
    headers: account.bearer,
  })
  t.equal(noToken.json().code, 'PASSWORD_CONFIRMATION_REQUIRED')
  // Past the first token's default lifetime (5 minutes), within the refreshed one's.
  clock.advance(4 * 60_000 + 1000)
  const expired = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: { ...account.bearer, 'x-password-confirmation': token },
  })
  t.equal(expired.statusCode, 403, 'an expired confirmation is refused')
  t.equal(expired.json().code, 'PASSWORD_CONFIRMATION_REQUIRED')
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'nothing deleted')
  const byFresh = await app.inject({
    method: 'PATCH',
    url: '/users/me',
    headers: { ...account.bearer, 'x-password-confirmation': fresh },
    payload: { displayName: 'Still confirmed' },
  })
  t.equal(byFresh.statusCode, 200, 'the refreshed token outlives the first')
  clock.advance(60_000)
  const freshExpired = await app.inject({
    method: 'PATCH',
    url: '/users/me',
    headers: { ...account.bearer, 'x-password-confirmation': fresh },
    payload: { displayName: 'Too late' },
  })
  t.equal(freshExpired.statusCode, 403, 'and expires in turn')
})

t.test('PATCH /users/me: email rules and strict body', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const taken = await signup(app)
  const token = await confirmPassword(app, account)
  const headers = { ...account.bearer, 'x-password-confirmation': token }
  const cases: Array<[object, number, string?]> = [
    [{ email: taken.email.toUpperCase() }, 409, 'EMAIL_TAKEN'],
    [{ email: 'nope' }, 400, 'VALIDATION_FAILED'],
    [{ id: 'x' }, 400, 'VALIDATION_FAILED'],
    [{ passwordHash: 'x' }, 400, 'VALIDATION_FAILED'],
    [{ displayName: 'x'.repeat(101) }, 400, 'VALIDATION_FAILED'],
  ]
  for (const [payload, status, code] of cases) {
    const response = await app.inject({ method: 'PATCH', url: '/users/me', headers, payload })
    t.equal(response.statusCode, status, JSON.stringify(payload))
    t.equal(response.json().code, code, JSON.stringify(payload))
  }
  const before = (await app.inject({ url: '/users/me', headers: account.bearer })).json().user
  clock.advance(60_000)
  const changedAt = clock.now()
  const newEmail = uniqueEmail('renamed')
  const ok = await app.inject({
    method: 'PATCH',
    url: '/users/me',
    headers,
    payload: { email: ` ${newEmail.toUpperCase()} `, displayName: null },
  })
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().user.email, newEmail)
  t.equal(ok.json().user.displayName, null)
  const updatedAt = Date.parse(ok.json().user.updatedAt)
  t.ok(updatedAt >= changedAt && updatedAt <= clock.now(), 'updatedAt moved to the time of the change')
  t.ok(updatedAt - Date.parse(before.updatedAt) >= 60_000, 'a minute after the previous updatedAt')
  t.equal(ok.json().user.createdAt, before.createdAt, 'createdAt stays')
  await login(app, newEmail)
})

t.test('PUT /users/me/password', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const other = await login(app, account.email)
  const put = (payload: object) =>
    app.inject({ method: 'PUT', url: '/users/me/password', headers: account.bearer, payload })

  const wrong = await put({ currentPassword: 'wrong wrong', newPassword: 'a brand new passphrase' })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'INVALID_CREDENTIALS')
  const weak = await put({ currentPassword: PASSWORD, newPassword: 'password1' })
  t.equal(weak.statusCode, 400)
  t.equal(weak.json().code, 'PASSWORD_TOO_WEAK')
  t.equal(weak.json().details[0].field, 'newPassword')
  const unknown = await put({ currentPassword: PASSWORD, newPassword: 'a brand new passphrase', extra: 1 })
  t.equal(unknown.json().code, 'VALIDATION_FAILED')

  const ok = await put({ currentPassword: PASSWORD, newPassword: 'a brand new passphrase' })
  t.equal(ok.statusCode, 204)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'this session stays')
  t.equal(
    (await app.inject({ url: '/users/me', headers: other.bearer })).json().code,
    'SESSION_REVOKED',
    'others revoked',
  )
  const oldLogin = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: PASSWORD },
  })
  t.equal(oldLogin.statusCode, 401)
  await login(app, account.email, 'a brand new passphrase')
})

t.test('DELETE /users/me deletes the user, its sessions, and clears cookies', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const other = await login(app, account.email)
  const without = await app.inject({ method: 'DELETE', url: '/users/me', headers: account.bearer })
  t.equal(without.statusCode, 403)
  t.equal(without.json().code, 'PASSWORD_CONFIRMATION_REQUIRED')
  const token = await confirmPassword(app, account)
  const response = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: { ...account.bearer, 'x-password-confirmation': token },
  })
  t.equal(response.statusCode, 204)
  t.same(cookiesOf(response), { access_token: '', refresh_token: '', password_confirmation_token: '' })
  for (const session of [account, other]) {
    t.equal((await app.inject({ url: '/users/me', headers: session.bearer })).statusCode, 401)
  }
  const rows = await app.db.selectFrom('sessions').select('id').where('user_id', '=', account.userId).execute()
  t.equal(rows.length, 0, 'sessions deleted')
  const relogin = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: PASSWORD },
  })
  t.equal(relogin.statusCode, 401)
  await signup(app, { email: account.email })
})
