// Sign-up and login: the rules of contract section 4, cookies of section 2.
import t from 'tap'
import { buildTestApp, login, PASSWORD, signup, uniqueEmail } from './helper.js'

type SetCookie = {
  name: string
  value: string
  path?: string
  maxAge?: number
  httpOnly?: boolean
  secure?: boolean
  sameSite?: string
}

t.test('sign-up answers 201 with the user, an access token and both cookies', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const email = uniqueEmail()
  const response = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email, password: PASSWORD, displayName: 'Ada' },
  })
  t.equal(response.statusCode, 201)
  const body = response.json()
  t.same(Object.keys(body).sort(), ['accessToken', 'accessTokenExpiresAt', 'user'])
  t.same(Object.keys(body.user).sort(), ['createdAt', 'displayName', 'email', 'emailVerified', 'id', 'updatedAt'])
  t.equal(body.user.email, email)
  t.equal(body.user.displayName, 'Ada')
  t.match(body.user.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.ok(Math.abs(Date.parse(body.accessTokenExpiresAt) - clock.now() - 15 * 60_000) < 5000, 'expires in 15 minutes')
  t.equal(response.headers['cache-control'], 'no-store')
  t.notMatch(response.body, /refresh|argon2|password/i, 'no refresh token or hash in the body')

  const cookies = response.cookies as SetCookie[]
  const access = cookies.find((cookie) => cookie.name === 'access_token')
  const refresh = cookies.find((cookie) => cookie.name === 'refresh_token')
  t.match(access, { path: '/', httpOnly: true, secure: true, sameSite: 'Lax', maxAge: 900 })
  t.match(refresh, { path: '/auth', httpOnly: true, secure: true, sameSite: 'Strict', maxAge: 7 * 86400 })
  const device = cookies.find((cookie) => cookie.name === 'device_token')
  t.match(device, { path: '/auth', httpOnly: true, secure: true, sameSite: 'Strict', maxAge: 90 * 86400 })
  // Signed with COOKIE_SECRET: the app's own unsigner accepts it and gives back the body's token.
  const signed = decodeURIComponent(access?.value ?? '')
  t.not(signed, body.accessToken, 'the cookie is not the bare token')
  const unsigned = app.unsignCookie(signed)
  t.equal(unsigned.valid, true, 'the cookie carries a valid signature')
  t.equal(unsigned.value, body.accessToken, 'of the access token of the body')
  const signature = signed.slice(signed.lastIndexOf('.') + 1)
  const otherSignature = `${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`
  const tampered = `${signed.slice(0, signed.lastIndexOf('.') + 1)}${otherSignature}`
  t.equal(app.unsignCookie(tampered).valid, false, 'a tampered signature is not valid')
  t.equal(app.unsignCookie(body.accessToken).valid, false, 'the bare token is not a validly signed cookie')
})

t.test('email is trimmed and lower-cased; a taken email is 409 EMAIL_TAKEN', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app, { email: '  Grace.Hopper@Example.COM ' })
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(me.json().user.email, 'grace.hopper@example.com')
  const again = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email: 'GRACE.hopper@example.com', password: 'another long passphrase' },
  })
  t.equal(again.statusCode, 409)
  t.equal(again.json().code, 'EMAIL_TAKEN')
  t.equal(again.json().error, 'Conflict')
  const loggedIn = await login(app, 'Grace.Hopper@example.com ')
  t.equal(loggedIn.userId, account.userId, 'login normalizes the same way')
})

t.test('password rules: 8..256 characters, not a common password', async (t) => {
  const { app } = await buildTestApp(t)
  const cases: Array<[string, string, number, string?]> = [
    ['seven characters', 'Ab3$efg', 400, 'PASSWORD_TOO_WEAK'],
    ['exactly 8', 'Ab3$efgh', 201],
    ['256 characters', `${'x'.repeat(255)}y`, 201],
    ['257 characters', `${'x'.repeat(256)}y`, 400, 'PASSWORD_TOO_WEAK'],
    ['common: password', 'password', 400, 'PASSWORD_TOO_WEAK'],
    ['common: 12345678', '12345678', 400, 'PASSWORD_TOO_WEAK'],
    ['common: qwertyuiop', 'qwertyuiop', 400, 'PASSWORD_TOO_WEAK'],
    ['common: iloveyou', 'iloveyou', 400, 'PASSWORD_TOO_WEAK'],
    ['common, other case: PASSWORD', 'PASSWORD', 400, 'PASSWORD_TOO_WEAK'],
    ['8 emoji count as 8 characters', '🔑🔑🔑🔑🔑🔑🔑🔑', 201],
  ]
  for (const [name, password, status, code] of cases) {
    const response = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { email: uniqueEmail(), password },
    })
    t.equal(response.statusCode, status, name)
    if (code) {
      t.equal(response.json().code, code, name)
      t.equal(response.json().details?.[0]?.field, 'password', `${name}: names the field`)
      if (!/^[a-z]+$/i.test(password)) {
        t.notMatch(response.body, password.slice(0, 8), `${name}: the password is not echoed`)
      }
    }
  }
})

t.test('sign-up validation: unknown properties, bad email, wrong types', async (t) => {
  const { app } = await buildTestApp(t)
  const good = { email: uniqueEmail(), password: PASSWORD }
  const cases: Array<[string, unknown, string]> = [
    ['unknown property (mass assignment)', { ...good, id: 'chosen-id' }, 'id'],
    ['isAdmin', { ...good, isAdmin: true }, 'isAdmin'],
    ['missing email', { password: PASSWORD }, 'email'],
    ['missing password', { email: uniqueEmail() }, 'password'],
    ['not an email', { ...good, email: 'not-an-email' }, 'email'],
    ['email too long', { ...good, email: `${'a'.repeat(250)}@example.com` }, 'email'],
    ['number as password', { ...good, password: 12345678 }, 'password'],
    ['display name too long', { ...good, displayName: 'x'.repeat(101) }, 'displayName'],
    ['empty display name', { ...good, displayName: '' }, 'displayName'],
    ['array body', [good], 'body'],
  ]
  for (const [name, payload, field] of cases) {
    const response = await app.inject({ method: 'POST', url: '/auth/signup', payload: payload as object })
    t.equal(response.statusCode, 400, name)
    const body = response.json()
    t.equal(body.code, 'VALIDATION_FAILED', name)
    t.ok(Array.isArray(body.details), `${name}: details`)
    t.ok(
      body.details.some((detail: { field: string }) => detail.field === field),
      `${name}: names ${field} (got ${JSON.stringify(body.details)})`,
    )
  }
  const users = await app.db.selectFrom('users').select('id').execute()
  t.equal(users.length, 0, 'nothing was created')
})

t.test('login: 200 with a new session; wrong password and unknown email are indistinguishable', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const ok = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: PASSWORD },
  })
  t.equal(ok.statusCode, 200)
  t.equal(ok.json().user.id, account.userId)
  t.ok(ok.json().accessToken)
  t.same((ok.cookies as SetCookie[]).map((cookie) => cookie.name).sort(), [
    'access_token',
    'device_token',
    'refresh_token',
  ])
  const wrong = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: 'not the password' },
  })
  const unknown = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: uniqueEmail('nobody'), password: 'not the password' },
  })
  t.equal(wrong.statusCode, 401)
  t.equal(unknown.statusCode, 401)
  t.same(wrong.json(), unknown.json(), 'same body')
  t.equal(wrong.json().code, 'INVALID_CREDENTIALS')
  t.same(Object.keys(wrong.headers).sort(), Object.keys(unknown.headers).sort(), 'same headers')
})

t.test('login takes the same time for an unknown email as for a wrong password', async (t) => {
  // Real argon2 work (a few tens of ms) so a missing dummy hash would show as a
  // tenfold difference; the bounds are loose so machine noise cannot fail it.
  const { app } = await buildTestApp(t, { ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '3' })
  const account = await signup(app)
  const time = async (email: string) => {
    const start = process.hrtime.bigint()
    const response = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email, password: 'wrong password!' },
    })
    t.equal(response.statusCode, 401)
    return Number(process.hrtime.bigint() - start) / 1e6
  }
  const known: number[] = []
  const unknown: number[] = []
  for (let round = 0; round < 7; round++) {
    known.push(await time(account.email))
    unknown.push(await time(uniqueEmail('ghost')))
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
  const ratio = median(unknown) / median(known)
  t.ok(ratio > 0.5 && ratio < 2, `unknown/known median time ratio ${ratio.toFixed(2)} is near 1`)
})

t.test('a user who changes argon2 settings gets the hash upgraded at login', async (t) => {
  const { app, config } = await buildTestApp(t)
  const account = await signup(app)
  const before = await app.db
    .selectFrom('users')
    .select('password_hash')
    .where('id', '=', account.userId)
    .executeTakeFirst()
  t.match(before?.password_hash, /^\$argon2id\$v=19\$m=256,p=1,t=1\$/, 'stored as argon2id')
  // The server restarts with stronger settings (one SQLite server per file at a time).
  await app.close()
  const { buildApp } = await import('../src/app.js')
  const stronger = await buildApp({ ...config, argon2MemoryKib: 512, argon2TimeCost: 2 })
  t.teardown(() => stronger.close())
  await login(stronger, account.email)
  const after = await stronger.db
    .selectFrom('users')
    .select('password_hash')
    .where('id', '=', account.userId)
    .executeTakeFirst()
  t.match(after?.password_hash, /^\$argon2id\$v=19\$m=512,p=1,t=2\$/, 'rehashed with the new parameters')
  await login(stronger, account.email)
})
