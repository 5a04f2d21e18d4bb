// The signed-in user's sessions: list the active ones, revoke one.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { revokeOwnSession } from '../../../src/auth/flows/end-sessions.js'
import { clientOf } from '../../../src/auth/security-events.js'
import { listActiveSessions, SIGN_IN_METHODS } from '../../../src/auth/sessions.js'
import { notFound } from '../../../src/errors.js'
import { DeviceName, errorResponses, IdParams, IsoDateTime, Nullable } from '../../../src/schemas.js'

const SessionSchema = Type.Object(
  {
    id: Type.String(),
    createdAt: IsoDateTime,
    lastUsedAt: IsoDateTime,
    expiresAt: IsoDateTime,
    userAgent: Nullable(Type.String()),
    device: DeviceName,
    ip: Nullable(Type.String()),
    signInMethod: Nullable(
      Type.String({
        enum: [...SIGN_IN_METHODS],
        description:
          'How the session was started: sign-up, password, password and a TOTP or recovery code, passkey, or a mailed sign-in link; null for sessions started before latchkey recorded it',
      }),
    ),
    current: Type.Boolean({ description: 'Whether this is the session of the request' }),
  },
  { title: 'Session' },
)

const sessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, clock, tokens, flows } = fastify

  fastify.get(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'List your active sessions',
        response: { 200: Type.Object({ items: Type.Array(SessionSchema) }, { title: 'Sessions' }) },
      },
    },
    async (request) => ({
      items: await listActiveSessions(db, request.auth.userId, request.auth.sessionId, clock.now()),
    }),
  )

  fastify.delete(
    '/:id',
    {
      schema: {
        tags: ['auth'],
        summary: 'Revoke one of your sessions',
        description:
          'All tokens of the session stop working at once. Revoking the current session also clears its cookies.',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...errorResponses(403, 404) },
      },
    },
    async (request, reply) => {
      const { userId, sessionId } = request.auth
      const caller = { userId, sessionId, ...clientOf(request) }
      if (!(await revokeOwnSession(flows, caller, request.params.id))) throw notFound('Session')
      if (request.params.id === request.auth.sessionId) tokens.clearCookies(reply)
      return reply.code(204).send(null)
    },
  )
}

export default sessionRoutes
