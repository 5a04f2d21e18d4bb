// A real resource server: a small Fastify API that verifies latchkey's access
// tokens the way the README tells a Node service to, with `jose` alone
// (createRemoteJWKSet + jwtVerify with issuer and audience), against the JWKS
// that latchkey serves on a real listening socket. It shares no code with
// latchkey. Time moves with latchkey's TestClock, which the resource server
// reads through jose's `currentDate`; jose caches the JWKS in real time, so
// "its cache ran out" is a fresh remote key set (`forgetKeys`). The README's
// example is run too, as a reader would copy it into a new project.
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import { createRemoteJWKSet, jwtVerify, SignJWT } from 'jose'
import t from 'tap'
import { JWKS_MAX_AGE } from '../src/auth/signing-keys.js'
import { freePort } from './e2e/server-process.js'
import { buildTestApp, login, signup, tempDir } from './helper.js'
import { decodeJwt, forgeJwt } from './jwt.js'

const AUDIENCE = 'https://api.example.com'
interface Teardown {
  teardown(fn: () => unknown): void
}

interface Discovery {
  issuer: string
  jwks_uri: string
  id_token_signing_alg_values_supported: string[]
  introspection_endpoint?: string
}

const CLIENT = { id: 'orders-api', secret: 'orders-api-introspection-secret-0123456789' }

/** The resource server: GET /orders answers the token's subject, or 401 with jose's error code. */
async function startResourceServer(t: Teardown, issuer: string, now: () => number) {
  // Discovery from the issuer URL, as standard libraries do it.
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Discovery
  const jwksUrl = new URL(discovery.jwks_uri)
  let keys = createRemoteJWKSet(jwksUrl)
  const api = Fastify()
  api.get('/orders', async (request, reply) => {
    const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
    if (!token) return reply.code(401).send({ error: 'no token' })
    try {
      const { payload } = await jwtVerify(token, keys, { issuer, audience: AUDIENCE, currentDate: new Date(now()) })
      return { sub: payload.sub }
    } catch (error) {
      return reply.code(401).send({ error: (error as { code?: string }).code ?? 'ERR_UNKNOWN' })
    }
  })
  await api.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => api.close())
  const address = api.server.address()
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  return {
    discovery,
    async call(token: string): Promise<{ status: number; body: { sub?: string; error?: string } }> {
      const response = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${token}` } })
      return { status: response.status, body: (await response.json()) as { sub?: string; error?: string } }
    },
    /** Its JWKS cache runs out: the next token makes it fetch the keys again. */
    forgetKeys() {
      keys = createRemoteJWKSet(jwksUrl)
    },
  }
}

async function setUp(t: Teardown) {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const built = await buildTestApp(t, {
    JWT_ISSUER: issuer,
    JWT_AUDIENCE: AUDIENCE,
    JWT_ACCESS_TOKEN_DURATION: '60s',
    INTROSPECTION_CLIENT_ID: CLIENT.id,
    INTROSPECTION_CLIENT_SECRET: CLIENT.secret,
  })
  await built.app.listen({ port, host: '127.0.0.1' })
  const api = await startResourceServer(t, issuer, () => built.clock.now())
  const introspect = async (token: string) => {
    const response = await fetch(`${issuer}/auth/introspect`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }).toString(),
    })
    return response.json()
  }
  const onLatchkey = async (token: string) =>
    (await built.app.inject({ url: '/users/me', headers: { authorization: `Bearer ${token}` } })).statusCode
  return { ...built, issuer, api, introspect, onLatchkey }
}

const kidOf = (token: string) => decodeJwt(token).header.kid as string

t.test('the discovery document leads to the JWKS', async (t) => {
  const { api, issuer } = await setUp(t)
  t.equal(api.discovery.issuer, issuer)
  t.equal(api.discovery.jwks_uri, `${issuer}/.well-known/jwks.json`)
  t.same(api.discovery.id_token_signing_alg_values_supported, ['EdDSA'])
  t.equal(api.discovery.introspection_endpoint, `${issuer}/auth/introspect`)
})

t.test('the resource server accepts a latchkey token and refuses forged ones', async (t) => {
  const { app, api } = await setUp(t)
  const account = await signup(app)
  const accepted = await api.call(account.accessToken)
  t.equal(accepted.status, 200, 'a latchkey token is accepted')
  t.equal(accepted.body.sub, account.userId)

  const { header, claims } = decodeJwt(account.accessToken)
  const kid = header.kid as string
  const [head, body, signature] = account.accessToken.split('.')
  const { keys } = (await (await fetch(api.discovery.jwks_uri)).json()) as { keys: Array<{ kid: string; x: string }> }
  const jwk = keys.find((key) => key.kid === kid)
  if (!jwk) throw new Error('the token names no published key')
  const publicPem = createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }) as string
  const stranger = generateKeyPairSync('ed25519').privateKey
  const tampered = Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else' })).toString('base64url')

  const forged: Array<[string, string]> = [
    ['alg none', forgeJwt(claims, null, { alg: 'none', typ: 'JWT', kid })],
    ['HS256 with the public JWK as the secret', forgeJwt(claims, JSON.stringify(jwk), { alg: 'HS256', kid })],
    ['HS256 with the public key PEM as the secret', forgeJwt(claims, publicPem, { alg: 'HS256', kid })],
    [
      'HS256 with the raw public key as the secret',
      forgeJwt(claims, Buffer.from(jwk.x, 'base64url'), { alg: 'HS256', kid }),
    ],
    [
      'an unknown kid',
      await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'unknown-kid' }).sign(stranger),
    ],
    [
      'another key under the real kid',
      await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid }).sign(stranger),
    ],
    ['a tampered payload', `${head}.${tampered}.${signature}`],
    ['the signature stripped', `${head}.${body}.`],
  ]
  for (const [name, token] of forged) {
    const response = await api.call(token)
    t.equal(response.status, 401, `resource server refuses ${name} (${response.body.error})`)
  }
  t.equal((await api.call(account.accessToken)).status, 200, 'and still accepts the real one')
})

t.test('an expired token is refused by the resource server and by latchkey', async (t) => {
  const { app, clock, api, onLatchkey } = await setUp(t)
  const account = await signup(app)
  const exp = (decodeJwt(account.accessToken).claims.exp as number) * 1000
  clock.advance(exp - 1000 - clock.now())
  t.equal((await api.call(account.accessToken)).status, 200, 'a second before exp')
  clock.advance(1000)
  const expired = await api.call(account.accessToken)
  t.equal(expired.status, 401)
  t.equal(expired.body.error, 'ERR_JWT_EXPIRED')
  t.equal(await onLatchkey(account.accessToken), 401)
})

t.test('rotation end to end: no live token is ever refused; a retired-then-revoked key fails', async (t) => {
  const { app, clock, api, introspect, onLatchkey } = await setUp(t)
  const { rotateKeys, revokeKey, accessTokenPolicy } = await import('../src/auth/signing-keys.js')
  const policy = accessTokenPolicy(app.config)
  const account = await signup(app)
  const issued = [account.accessToken]
  const newToken = async () => {
    const token = (await login(app, account.email)).accessToken
    issued.push(token)
    return token
  }
  const revoked = new Set<string>()
  /** Every token that has not expired (nor had its key revoked) verifies on both, with a fresh JWKS fetch. */
  const liveTokensWork = async (label: string) => {
    api.forgetKeys()
    for (const token of issued) {
      if (clock.now() >= (decodeJwt(token).claims.exp as number) * 1000 || revoked.has(kidOf(token))) continue
      t.equal((await api.call(token)).status, 200, `${label}: resource server accepts a live token`)
      t.equal(await onLatchkey(token), 200, `${label}: latchkey accepts it`)
    }
  }
  const k1 = kidOf(account.accessToken)

  const started = await rotateKeys(app.db, app.keys, policy, clock.now())
  if (started.kind !== 'started') throw new Error(started.kind)
  const k2 = started.next.kid
  await app.signingKeys.refresh()
  await liveTokensWork('next published')
  clock.advance(JWKS_MAX_AGE * 1000 - 1000)
  const lastOfK1 = await newToken()
  t.equal(kidOf(lastOfK1), k1)
  clock.advance(1000)
  const firstOfK2 = await newToken()
  t.equal(kidOf(firstOfK2), k2)
  await liveTokensWork('k2 current, k1 retired')
  t.equal((await api.call(lastOfK1)).status, 200, 'the last token of the retired key still works')

  // Emergency: the retired key is revoked.
  t.equal((await revokeKey(app.db, app.keys, policy, k1, clock.now())).kind, 'revoked')
  revoked.add(k1)
  await app.signingKeys.refresh()
  t.equal(await onLatchkey(lastOfK1), 401, 'latchkey refuses its tokens at once')
  t.same(await introspect(lastOfK1), { active: false }, 'introspection too')
  t.equal(
    (await api.call(lastOfK1)).status,
    200,
    'a resource server verifying locally accepts it until its JWKS cache runs out (the documented trade-off)',
  )
  api.forgetKeys()
  const refused = await api.call(lastOfK1)
  t.equal(refused.status, 401, 'then refuses it')
  t.equal(refused.body.error, 'ERR_JWKS_NO_MATCHING_KEY')
  t.equal((await api.call(firstOfK2)).status, 200, 'the current key is untouched')
  t.match(await introspect(firstOfK2), { active: true, sub: account.userId, aud: AUDIENCE })
  await liveTokensWork('after the revocation')

  clock.advance(60_000)
  t.equal((await api.call(firstOfK2)).body.error, 'ERR_JWT_EXPIRED', 'tokens end at their expiry')
})

t.test("the README's example, copied into a new project, verifies a real token", async (t) => {
  const { app, issuer } = await setUp(t)
  const readme = readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf("## Verifying latchkey's tokens in your API"))
  const example = /```js\n([\s\S]*?)```/.exec(section)?.[1]
  if (!example) throw new Error('no example in the README')
  // What a reader edits: the two URLs.
  const code = example
    .replace("'https://auth.example.com'", `'${issuer}'`)
    .replace("'https://api.example.com'", `'${AUDIENCE}'`)
  t.not(code, example, 'the example names the issuer to replace')
  const project = tempDir(t, 'latchkey-readme-')
  mkdirSync(path.join(project, 'node_modules'))
  symlinkSync(path.join(import.meta.dirname, '..', 'node_modules', 'jose'), path.join(project, 'node_modules', 'jose'))
  writeFileSync(path.join(project, 'auth.mjs'), code)
  const { authenticate } = (await import(pathToFileURL(path.join(project, 'auth.mjs')).href)) as {
    authenticate: (authorization: string | undefined) => Promise<{ userId: string; sessionId: string }>
  }
  const account = await signup(app)
  const identity = await authenticate(`Bearer ${account.accessToken}`)
  t.equal(identity.userId, account.userId)
  t.equal(identity.sessionId, decodeJwt(account.accessToken).claims.sid)
  const [head, body] = account.accessToken.split('.')
  await t.rejects(authenticate(`Bearer ${head}.${body}.AAAA`), 'a forged signature is refused')
  await t.rejects(authenticate(undefined), 'no token is refused')
})
