// Token introspection (RFC 7662) for resource servers that must honour a
// revocation at once rather than at the token's expiry: `active` is true only
// for a valid access token of a live session. The caller authenticates with
// HTTP Basic and the client id and secret of the configuration; without them
// configured the route does not exist (404). The body is a form (as RFC 7662
// says) or JSON; the form parser lives in this folder's context only.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { AppError } from '../../../src/errors.js'
import { errorResponses } from '../../../src/schemas.js'

const IntrospectionSchema = Type.Object(
  {
    active: Type.Boolean({ description: 'true only for a valid access token of a live session' }),
    sub: Type.Optional(Type.String({ description: 'User id' })),
    sid: Type.Optional(Type.String({ description: 'Session id' })),
    exp: Type.Optional(Type.Integer()),
    iat: Type.Optional(Type.Integer()),
    iss: Type.Optional(Type.String()),
    jti: Type.Optional(Type.String()),
    aud: Type.Optional(Type.String()),
  },
  { title: 'Introspection' },
)

const BASIC = /^Basic +([A-Za-z0-9+/]+=*) *$/i

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest()

/** RFC 6749 2.3.1: the id and secret are form-encoded before they are joined and base64-encoded. */
function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}

const introspectRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const client = fastify.config.introspectionClient
  if (!client) return
  const expectedId = digest(client.id)
  const expectedSecret = digest(client.secret)

  const refuse = () =>
    new AppError(401, 'INVALID_CLIENT', 'Client authentication failed', undefined, {
      'WWW-Authenticate': 'Basic realm="latchkey", charset="UTF-8"',
    })

  const matches = (id: string | undefined, secret: string | undefined): boolean => {
    // Both compared in constant time, always both.
    const idOk = timingSafeEqual(digest(id ?? ''), expectedId)
    const secretOk = timingSafeEqual(digest(secret ?? ''), expectedSecret)
    return idOk && secretOk && id !== undefined && secret !== undefined
  }

  // Before the body is read: an unauthenticated caller costs no parsing.
  async function authenticateClient(request: FastifyRequest): Promise<void> {
    const encoded = BASIC.exec(request.headers.authorization ?? '')?.[1]
    if (!encoded) throw refuse()
    const decoded = Buffer.from(encoded, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon === -1) throw refuse()
    const [rawId, rawSecret] = [decoded.slice(0, colon), decoded.slice(colon + 1)]
    // Form-encoded as RFC 6749 says, or as most clients send it (curl -u): either is accepted.
    const formEncoded = matches(formDecode(rawId), formDecode(rawSecret))
    const raw = matches(rawId, rawSecret)
    if (!formEncoded && !raw) throw refuse()
  }

  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    const fields = new Map<string, string>()
    for (const [name, value] of new URLSearchParams(body as string)) {
      // RFC 6749 3.2: a parameter must not be sent twice.
      if (fields.has(name)) {
        done(
          new AppError(400, 'VALIDATION_FAILED', 'The request is not valid', [
            { field: name, message: 'is given more than once' },
          ]),
        )
        return
      }
      fields.set(name, value)
    }
    done(null, Object.fromEntries(fields))
  })

  fastify.post(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Introspect an access token (RFC 7662)',
        description:
          'For resource servers that must honour a revocation at once. Authenticate with `Authorization: Basic` and INTROSPECTION_CLIENT_ID / INTROSPECTION_CLIENT_SECRET (a wrong or missing one is 401 INVALID_CLIENT); send `token` as a form (`application/x-www-form-urlencoded`) or JSON. Answers `{ "active": false }` for anything that is not a valid access token of a live session: expired, revoked, tampered, signed by a revoked key, or another kind of token. Off (404) unless both variables are set.',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: Type.Object(
          {
            token: Type.String({ minLength: 1, maxLength: 16384 }),
            token_type_hint: Type.Optional(Type.String({ maxLength: 100 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: IntrospectionSchema, ...errorResponses(400, 401, 413, 415) },
      },
      onRequest: authenticateClient,
    },
    async (request) => fastify.tokens.introspect(request.body.token),
  )
}

export default introspectRoutes
