// JWTs (HS256 through fast-jwt: synchronous, no thread pool). Access tokens and
// password-confirmation tokens are signed with different derived keys, so one
// kind is never accepted as the other. Only HS256 is accepted (never `none`),
// the issuer must match, and header fields like `jku`, `jwk`, `x5u` or `kid` are
// ignored: the key is always our own.
import jwt from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module '@fastify/jwt' {
  interface FastifyJWT {
    namespaces: 'access' | 'passwordConfirmation'
  }
}

const REQUIRED_CLAIMS = ['sub', 'sid', 'jti', 'iat', 'exp', 'iss']

async function jwtPlugin(fastify: FastifyInstance): Promise<void> {
  const { config, keys } = fastify
  const common = (key: Buffer) => ({
    secret: key,
    sign: { algorithm: 'HS256' as const },
    verify: {
      algorithms: ['HS256' as const],
      allowedIss: config.jwtIssuer,
      requiredClaims: REQUIRED_CLAIMS,
      // Expiry is checked by plugins/auth.ts against the app's clock (src/clock.ts).
      ignoreExpiration: true,
      // No fast-jwt cache: the auth plugin remembers verified access tokens itself,
      // keyed by the token rather than by a hash of it (plugins/auth.ts).
      cache: false,
    },
  })
  await fastify.register(jwt, { ...common(keys.accessToken), namespace: 'access' })
  await fastify.register(jwt, { ...common(keys.passwordConfirmation), namespace: 'passwordConfirmation' })
}

export default fp(jwtPlugin, { name: 'jwt', dependencies: ['db'] })
