// Discovery for resource servers: the public keys that verify access tokens
// (JWKS, RFC 7517) and an OpenID-style configuration naming them, so that
// standard libraries find the keys from the issuer URL (JWT_ISSUER). Public and
// cacheable: a rotation publishes a new key one cache lifetime before it signs.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { JWKS_MAX_AGE } from '../../src/auth/signing-keys.js'
import { errorResponses } from '../../src/schemas.js'

/** The folder is `well-known` (no dot in a source folder); its URL prefix is RFC 8615's. */
export const autoPrefix = '/.well-known'

const JwkSchema = Type.Object(
  {
    kty: Type.String({ description: '`OKP` (Ed25519) or `EC` (P-256)' }),
    crv: Type.String({ description: '`Ed25519` or `P-256`' }),
    x: Type.String(),
    y: Type.Optional(Type.String()),
    kid: Type.String({ description: 'Named by the `kid` header of the tokens this key signs' }),
    alg: Type.String({ description: '`EdDSA` or `ES256`: the only algorithm this key verifies' }),
    use: Type.String({ description: '`sig`' }),
  },
  { title: 'Jwk' },
)

const JwksSchema = Type.Object({ keys: Type.Array(JwkSchema) }, { title: 'Jwks' })

const DiscoverySchema = Type.Object(
  {
    issuer: Type.String(),
    jwks_uri: Type.String(),
    id_token_signing_alg_values_supported: Type.Array(Type.String()),
    introspection_endpoint: Type.Optional(Type.String()),
    introspection_endpoint_auth_methods_supported: Type.Optional(Type.Array(Type.String())),
    subject_types_supported: Type.Array(Type.String()),
    claims_supported: Type.Array(Type.String()),
  },
  { title: 'OpenIdConfiguration' },
)

const CACHE_CONTROL = `public, max-age=${JWKS_MAX_AGE}`

const wellKnownRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { config, clock, signingKeys } = fastify
  // JWT_ISSUER as a URL is the public base; else the URL this request came to.
  const issuerUrl = /^https?:\/\//i.test(config.jwtIssuer) ? config.jwtIssuer.replace(/\/+$/, '') : undefined
  const baseOf = (request: FastifyRequest) => issuerUrl ?? `${request.protocol}://${request.host}`

  fastify.get(
    '/jwks.json',
    {
      schema: {
        tags: ['auth'],
        summary: 'Public keys that verify access tokens (JWKS)',
        description: `The keys that may verify a live access token: the current key, a \`next\` key published ahead of a rotation, and retired keys until the last token they signed has expired. Cacheable for ${JWKS_MAX_AGE} seconds. Verify a token only with the key its \`kid\` names, in that key's \`alg\`. Empty with JWT_ALGORITHM=HS256.`,
        response: { 200: JwksSchema, ...errorResponses() },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', CACHE_CONTROL)
      return { keys: signingKeys.jwks(clock.now()) }
    },
  )

  fastify.get(
    '/openid-configuration',
    {
      schema: {
        tags: ['auth'],
        summary: 'Discovery document: issuer, JWKS URL and algorithms',
        description:
          'Lets standard libraries find the keys from the issuer. Set JWT_ISSUER to the public URL of this server (e.g. `https://auth.example.com`) so that `issuer` and the URLs here match what tokens carry.',
        response: { 200: DiscoverySchema, ...errorResponses() },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', CACHE_CONTROL)
      const base = baseOf(request)
      return {
        issuer: config.jwtIssuer,
        jwks_uri: `${base}/.well-known/jwks.json`,
        id_token_signing_alg_values_supported: signingKeys.algorithms(clock.now()),
        ...(config.introspectionClient
          ? {
              introspection_endpoint: `${base}/auth/introspect`,
              introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
            }
          : {}),
        subject_types_supported: ['public'],
        claims_supported: ['sub', 'sid', 'jti', 'iat', 'exp', 'iss', ...(config.jwtAudience ? ['aud'] : [])],
      }
    },
  )
}

export default wellKnownRoutes
