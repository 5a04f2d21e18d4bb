// JWTs. Access tokens are signed with the database's signing keys (EdDSA by
// default, or ES256; src/auth/signing-keys.ts, through `jose`), so resource
// servers verify them with the public keys of /.well-known/jwks.json and cannot
// mint any; with JWT_ALGORITHM=HS256 they are signed with a key derived from
// JWT_SECRET instead. Decorates `signingKeys`, the instance's key ring: the
// first key is created on the first start, and the set is re-read every second,
// so a rotation or revocation made by any instance or `latchkey keys` is seen
// without a restart.
//
// Password-confirmation tokens, which only latchkey reads, stay HS256 (fast-jwt,
// through @fastify/jwt) with a key derived for that purpose alone, so one kind
// of token is never accepted as the other. Only HS256 is accepted (never
// `none`), the issuer must match, and header fields like `jku`, `jwk`, `x5u` or
// `kid` are ignored: the key is always our own.
import jwt from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { accessTokenPolicy, createKeyRing, ensureCurrentKey, type KeyRing } from '../src/auth/signing-keys.js'

declare module '@fastify/jwt' {
  interface FastifyJWT {
    namespaces: 'passwordConfirmation'
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The access-token keys of this instance (src/auth/signing-keys.ts). */
    signingKeys: KeyRing
  }
}

const REQUIRED_CLAIMS = ['sub', 'sid', 'jti', 'iat', 'exp', 'iss']

async function jwtPlugin(fastify: FastifyInstance): Promise<void> {
  const { config, keys, db, clock } = fastify
  await fastify.register(jwt, {
    secret: keys.passwordConfirmation,
    sign: { algorithm: 'HS256' as const },
    verify: {
      algorithms: ['HS256' as const],
      allowedIss: config.jwtIssuer,
      requiredClaims: REQUIRED_CLAIMS,
      // Expiry is checked by plugins/auth.ts against the app's clock (src/clock.ts).
      ignoreExpiration: true,
      cache: false,
    },
    namespace: 'passwordConfirmation',
  })

  const policy = accessTokenPolicy(config)
  const created = await ensureCurrentKey(db, keys, policy, clock.now())
  if (created) fastify.log.info({ kid: created, algorithm: policy.algorithm }, 'created the first signing key')
  const ring = createKeyRing(db, keys, policy, clock, {
    warn: (message, error) => fastify.log.warn({ err: error }, message),
    info: (message, fields) => fastify.log.info(fields ?? {}, message),
  })
  await ring.refresh()
  // Fails start-up with one clear line when this JWT_SECRET cannot open the current key.
  await ring.assertCanSign(clock.now())
  const current = ring.current(clock.now())
  if (current && current.algorithm !== policy.algorithm) {
    // New keys follow JWT_ALGORITHM; the current one signs until a rotation replaces it.
    fastify.log.warn(
      { kid: current.kid, algorithm: current.algorithm },
      `JWT_ALGORITHM is ${policy.algorithm} but the current signing key is ${current.algorithm}: run \`latchkey keys rotate\` to move to ${policy.algorithm}`,
    )
  }
  fastify.decorate('signingKeys', ring)
  fastify.addHook('onReady', async () => ring.start())
  // Before the database closes (its onClose hook).
  fastify.addHook('preClose', async () => ring.stop())
}

export default fp(jwtPlugin, { name: 'jwt', dependencies: ['db'] })
