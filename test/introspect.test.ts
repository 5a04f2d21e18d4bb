// POST /auth/introspect (RFC 7662): off unless configured, HTTP Basic client
// authentication, a form or JSON `token`, and `active: true` only for a valid
// access token of a live session.
import t from 'tap'
import { buildTestApp, confirmPassword, cookiesOf, signup } from './helper.js'
import { decodeJwt } from './jwt.js'

// A secret with the characters RFC 6749 2.3.1 makes clients form-encode.
const SECRET = 'introspection:secret+0123456789abcdef/='
const ENV = { INTROSPECTION_CLIENT_ID: 'orders-api', INTROSPECTION_CLIENT_SECRET: SECRET }
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
const AUTHORIZATION = basic('orders-api', SECRET)

t.test('off unless both variables are set: 404', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject({
    method: 'POST',
    url: '/auth/introspect',
    headers: { authorization: AUTHORIZATION },
    payload: { token: 'x' },
  })
  t.equal(response.statusCode, 404)
  t.equal(response.json().code, 'NOT_FOUND')
  const discovery = (await app.inject('/.well-known/openid-configuration')).json()
  t.notOk('introspection_endpoint' in discovery, 'nor advertised')
})

t.test('client authentication: HTTP Basic with the configured id and secret', async (t) => {
  const { app } = await buildTestApp(t, ENV)
  const cases: Array<[string, string | undefined, number]> = [
    ['the right id and secret', AUTHORIZATION, 200],
    ['scheme in another case', AUTHORIZATION.replace('Basic', 'bAsIc'), 200],
    ['no Authorization', undefined, 401],
    ['a wrong secret', basic('orders-api', `${SECRET}x`), 401],
    ['a wrong id', basic('other-api', SECRET), 401],
    ['the secret not form-encoded (curl -u)', `Basic ${Buffer.from(`orders-api:${SECRET}`).toString('base64')}`, 200],
    ['an empty secret', basic('orders-api', ''), 401],
    ['no colon', `Basic ${Buffer.from('orders-api').toString('base64')}`, 401],
    ['a bearer token', 'Bearer abc.def.ghi', 401],
    ['garbage', 'Basic %%%', 401],
    ['bad percent-encoding', `Basic ${Buffer.from('orders-api:%E0%A4%A').toString('base64')}`, 401],
  ]
  for (const [name, authorization, status] of cases) {
    const response = await app.inject({
      method: 'POST',
      url: '/auth/introspect',
      headers: authorization ? { authorization } : {},
      payload: { token: 'x' },
    })
    t.equal(response.statusCode, status, name)
    if (status === 401) {
      t.equal(response.json().code, 'INVALID_CLIENT', `${name}: INVALID_CLIENT`)
      t.match(response.headers['www-authenticate'], /^Basic realm="latchkey"/, `${name}: WWW-Authenticate`)
    }
  }
})

t.test('active only for a valid access token of a live session', async (t) => {
  const { app, clock } = await buildTestApp(t, ENV)
  const account = await signup(app)
  const confirmation = await confirmPassword(app, account)
  const refreshCookie = decodeURIComponent(account.cookies.refresh_token ?? '').replace(/\.[^.]+$/, '')
  const loggedOut = await signup(app)
  await app.inject({ method: 'POST', url: '/auth/logout', headers: loggedOut.bearer })
  const introspect = async (payload: string | Record<string, unknown>, contentType?: string) =>
    app.inject({
      method: 'POST',
      url: '/auth/introspect',
      headers: { authorization: AUTHORIZATION, ...(contentType ? { 'content-type': contentType } : {}) },
      payload,
    })

  const asJson = await introspect({ token: account.accessToken, token_type_hint: 'access_token' })
  t.equal(asJson.statusCode, 200)
  t.equal(asJson.headers['cache-control'], 'no-store')
  const { claims } = decodeJwt(account.accessToken)
  t.same(asJson.json(), {
    active: true,
    sub: account.userId,
    sid: claims.sid,
    exp: claims.exp,
    iat: claims.iat,
    iss: claims.iss,
    jti: claims.jti,
  })
  const asForm = await introspect(
    new URLSearchParams({ token: account.accessToken }).toString(),
    'application/x-www-form-urlencoded',
  )
  t.same(asForm.json(), asJson.json(), 'a form (RFC 7662) answers the same')

  const inactive: Array<[string, string]> = [
    ['garbage', 'not-a-token'],
    ['a tampered token', `${account.accessToken.slice(0, -4)}AAAA`],
    ['a refresh token', refreshCookie],
    ['a password-confirmation token', confirmation],
    ['a token of a logged-out session', loggedOut.accessToken],
    ['an oversized token', 'a'.repeat(5000)],
  ]
  for (const [name, token] of inactive) {
    const response = await introspect({ token })
    t.equal(response.statusCode, 200, name)
    t.same(response.json(), { active: false }, `${name}: inactive`)
  }
  clock.advance(15 * 60_000)
  t.same((await introspect({ token: account.accessToken })).json(), { active: false }, 'an expired token: inactive')
})

t.test('malformed requests', async (t) => {
  const { app } = await buildTestApp(t, ENV)
  const post = (payload: string, contentType: string) =>
    app.inject({
      method: 'POST',
      url: '/auth/introspect',
      headers: { authorization: AUTHORIZATION, 'content-type': contentType },
      payload,
    })
  const form = 'application/x-www-form-urlencoded'
  const cases: Array<[string, string, string, number, string]> = [
    ['no token', '', form, 400, 'VALIDATION_FAILED'],
    ['an empty token', 'token=', form, 400, 'VALIDATION_FAILED'],
    ['token given twice', 'token=a&token=b', form, 400, 'VALIDATION_FAILED'],
    ['an unknown parameter', 'token=a&client_secret=x', form, 400, 'VALIDATION_FAILED'],
    ['__proto__ as a parameter', 'token=a&__proto__=x', form, 400, 'VALIDATION_FAILED'],
    ['JSON with an unknown property', '{"token":"a","extra":1}', 'application/json', 400, 'VALIDATION_FAILED'],
    ['another media type', 'token=a', 'text/plain', 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ]
  for (const [name, payload, contentType, status, code] of cases) {
    const response = await post(payload, contentType)
    t.equal(response.statusCode, status, name)
    t.equal(response.json().code, code, `${name}: ${code}`)
  }
  // The form parser belongs to this route alone: sign-up still takes JSON only.
  const signupForm = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    headers: { 'content-type': form },
    payload: 'email=a%40example.com&password=correct+horse+battery+staple',
  })
  t.equal(signupForm.statusCode, 415)
  t.same(cookiesOf(signupForm), {})
})
