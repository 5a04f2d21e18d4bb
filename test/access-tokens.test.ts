// Access tokens: where they are read from, and every way a forged, tampered,
// expired or misplaced token is refused.
import t from 'tap'
import { deriveKeys } from '../src/auth/keys.js'
import { buildTestApp, confirmPassword, cookieHeader, signup } from './helper.js'
import { decodeJwt, forgeJwt } from './jwt.js'

t.test('access token claims', async (t) => {
  const { app, clock } = await buildTestApp(t)
  // Issued by the app's clock, not the wall clock.
  clock.advance(60 * 60_000)
  const account = await signup(app)
  const { header, claims } = decodeJwt(account.accessToken)
  t.equal(header.alg, 'EdDSA')
  t.type(header.kid, 'string')
  t.equal(claims.sub, account.userId)
  t.type(claims.sid, 'string')
  t.type(claims.jti, 'string')
  t.equal(claims.iss, 'latchkey')
  t.equal((claims.exp as number) - (claims.iat as number), 15 * 60)
  t.ok(Math.abs((claims.iat as number) * 1000 - clock.now()) < 5000, 'iat is the app clock’s now')
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200)
})

t.test('the token is accepted from the bearer header or the signed cookie', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const byBearer = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(byBearer.statusCode, 200)
  t.equal(byBearer.json().user.id, account.userId)
  const byCookie = await app.inject({ url: '/users/me', headers: { cookie: cookieHeader(account.cookies) } })
  t.equal(byCookie.statusCode, 200)
  t.equal(byCookie.json().user.id, account.userId)
  t.equal(byCookie.headers['cache-control'], 'no-store', 'user data is never cached')
})

t.test('the header wins when both are present', async (t) => {
  const { app } = await buildTestApp(t)
  const alice = await signup(app)
  const bob = await signup(app)
  const both = await app.inject({
    url: '/users/me',
    headers: { ...bob.bearer, cookie: cookieHeader(alice.cookies) },
  })
  t.equal(both.json().user.id, bob.userId)
  const badHeader = await app.inject({
    url: '/users/me',
    headers: { authorization: 'Bearer nope', cookie: cookieHeader(alice.cookies) },
  })
  t.equal(badHeader.statusCode, 401, 'a bad header is not rescued by a good cookie')
  t.equal(badHeader.json().code, 'ACCESS_TOKEN_INVALID')
})

t.test('refused tokens', async (t) => {
  const { app, config, clock } = await buildTestApp(t)
  const account = await signup(app)
  const keys = deriveKeys(config)
  const { header: accessHeader, claims } = decodeJwt(account.accessToken)
  // Claims signed with the real current key: only the claims are wrong.
  const signed = (changed: Record<string, unknown>) => app.signingKeys.sign({ ...claims, ...changed }, clock.now())
  const [wrongIssuer, noIssuer, noSessionId, otherSession] = await Promise.all([
    signed({ iss: 'evil' }),
    signed({ iss: undefined }),
    signed({ sid: undefined }),
    signed({ sid: 'not-a-session' }),
  ])
  const publicJwk = app.signingKeys.jwks(clock.now()).find((key) => key.kid === accessHeader.kid)
  const [head, body, signature] = account.accessToken.split('.')
  const tamperedClaims = Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url')
  const confirmation = await confirmPassword(app, account)

  const cases: Array<{ name: string; authorization?: string; code: string }> = [
    { name: 'no token at all', code: 'AUTH_REQUIRED' },
    {
      name: 'alg none',
      authorization: `Bearer ${forgeJwt(claims, null, { alg: 'none', typ: 'JWT' })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'alg none, uppercase',
      authorization: `Bearer ${forgeJwt(claims, null, { alg: 'NONE' })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'tampered payload',
      authorization: `Bearer ${head}.${tamperedClaims}.${signature}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    { name: 'signature stripped', authorization: `Bearer ${head}.${body}.`, code: 'ACCESS_TOKEN_INVALID' },
    {
      name: 'signed with another key',
      authorization: `Bearer ${forgeJwt(claims, 'another-key-of-32-bytes-or-more!!')}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'signed with the raw JWT_SECRET',
      authorization: `Bearer ${forgeJwt(claims, config.jwtSecret)}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'HS512 with the right key',
      authorization: `Bearer ${forgeJwt(claims, keys.accessToken, { alg: 'HS512', typ: 'JWT' })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'HS256 with the derived key of JWT_ALGORITHM=HS256',
      authorization: `Bearer ${forgeJwt(claims, keys.accessToken)}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'HS256 signed with the public key as the secret, naming its kid',
      authorization: `Bearer ${forgeJwt(claims, JSON.stringify(publicJwk), { alg: 'HS256', typ: 'JWT', kid: accessHeader.kid })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'HS256 signed with the raw public key as the secret, naming its kid',
      authorization: `Bearer ${forgeJwt(claims, Buffer.from(publicJwk?.x ?? '', 'base64url'), { alg: 'HS256', kid: accessHeader.kid })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'alg none naming the real kid',
      authorization: `Bearer ${forgeJwt(claims, null, { alg: 'none', kid: accessHeader.kid })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    { name: 'wrong issuer', authorization: `Bearer ${wrongIssuer}`, code: 'ACCESS_TOKEN_INVALID' },
    { name: 'no issuer', authorization: `Bearer ${noIssuer}`, code: 'ACCESS_TOKEN_INVALID' },
    { name: 'no session id', authorization: `Bearer ${noSessionId}`, code: 'ACCESS_TOKEN_INVALID' },
    { name: 'malformed', authorization: 'Bearer not.a.jwt', code: 'ACCESS_TOKEN_INVALID' },
    { name: 'garbage', authorization: 'Bearer %%%', code: 'ACCESS_TOKEN_INVALID' },
    { name: 'empty bearer', authorization: 'Bearer ', code: 'ACCESS_TOKEN_INVALID' },
    {
      name: 'another scheme',
      authorization: `Basic ${Buffer.from('a:b').toString('base64')}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    {
      name: 'oversized',
      authorization: `Bearer ${'a'.repeat(5000)}.${'b'.repeat(5000)}.c`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    { name: 'a password-confirmation token', authorization: `Bearer ${confirmation}`, code: 'ACCESS_TOKEN_INVALID' },
    {
      name: 'jku/jwk/x5u/kid headers pointing elsewhere',
      authorization: `Bearer ${forgeJwt(claims, 'attacker-key-attacker-key-attacker', {
        alg: 'HS256',
        jku: 'http://127.0.0.1:1/keys',
        jwk: { kty: 'oct', k: Buffer.from('attacker-key-attacker-key-attacker').toString('base64url') },
        x5u: 'http://127.0.0.1:1/cert',
        kid: '../../../../dev/null',
      })}`,
      code: 'ACCESS_TOKEN_INVALID',
    },
    { name: 'a session id of another session', authorization: `Bearer ${otherSession}`, code: 'SESSION_REVOKED' },
  ]
  for (const { name, authorization, code } of cases) {
    const response = await app.inject({ url: '/users/me', headers: authorization ? { authorization } : {} })
    t.equal(response.statusCode, 401, `${name}: 401`)
    t.equal(response.json().code, code, `${name}: ${code}`)
    t.match(response.headers['www-authenticate'], /^Bearer realm="latchkey"/, `${name}: WWW-Authenticate`)
    t.notMatch(response.body, /stack|SELECT|\$argon2/i, `${name}: no internals in the body`)
  }
})

t.test('a token with a foreign sub but our key and a real sid is refused', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const alice = await signup(app)
  const bob = await signup(app)
  const { claims } = decodeJwt(alice.accessToken)
  const mixed = await app.signingKeys.sign({ ...claims, sub: bob.userId }, clock.now())
  const response = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${mixed}` } })
  t.equal(response.statusCode, 401)
})

t.test('cookies: unsigned, tampered or oversized are 401, never 500', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const signed = account.cookies.access_token ?? ''
  const raw = decodeURIComponent(signed).replace(/\.[^.]+$/, '')
  const cases: Array<[string, string]> = [
    ['unsigned JWT', `access_token=${raw}`],
    ['signature of another value', `access_token=${encodeURIComponent(`${raw}x.${signed.split('.').pop()}`)}`],
    ['oversized', `access_token=${'a'.repeat(6000)}`],
    ['garbage', 'access_token=%E0%A4%A'],
    ['empty', 'access_token='],
  ]
  for (const [name, cookie] of cases) {
    const response = await app.inject({ url: '/users/me', headers: { cookie } })
    t.equal(response.statusCode, 401, name)
    t.match(response.json().code, /^(ACCESS_TOKEN_INVALID|AUTH_REQUIRED)$/, name)
  }
})

t.test('tokens are never read from the query string', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  for (const name of ['access_token', 'token', 'accessToken', 'jwt']) {
    const response = await app.inject({ url: `/users/me?${name}=${account.accessToken}` })
    t.equal(response.statusCode, 401, name)
    t.equal(response.json().code, 'AUTH_REQUIRED', name)
  }
})

t.test('an expired token is ACCESS_TOKEN_EXPIRED, an expired forged one is INVALID', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200)
  const expiresAt = (decodeJwt(account.accessToken).claims.exp as number) * 1000
  // Two seconds before its `exp` (the default JWT_ACCESS_TOKEN_DURATION, 15 minutes) it still works...
  clock.advance(expiresAt - 2000 - clock.now())
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'valid until exp')
  // ...and past it, not.
  clock.advance(3000)
  const expired = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(expired.statusCode, 401)
  t.equal(expired.json().code, 'ACCESS_TOKEN_EXPIRED')
  t.match(expired.headers['www-authenticate'], /error="invalid_token"/)
  const [head, body] = account.accessToken.split('.')
  const forged = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${head}.${body}.AAAA` } })
  t.equal(forged.json().code, 'ACCESS_TOKEN_INVALID', 'the signature is checked before the expiry')
  const byCookie = await app.inject({ url: '/users/me', headers: { cookie: cookieHeader(account.cookies) } })
  t.equal(byCookie.json().code, 'ACCESS_TOKEN_EXPIRED')
})

t.test('a revoked session refuses its unexpired access token on the very next request', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200)
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer })
  t.equal(logout.statusCode, 204)
  const after = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(after.statusCode, 401)
  t.equal(after.json().code, 'SESSION_REVOKED')
})
