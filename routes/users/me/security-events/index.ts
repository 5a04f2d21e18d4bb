// The signed-in user's security events, newest first (API.md section 7); protected
// by routes/users/autohooks.ts. Another user's events are never in the query.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { pageSecurityEvents } from '../../../../src/auth/security-events.js'
import { DeviceName, errorResponses, IsoDateTime, Nullable, PageQuery, pageOf } from '../../../../src/schemas.js'

const SecurityEventSchema = Type.Object(
  {
    id: Type.String(),
    type: Type.String({
      description:
        'signup, login_succeeded, login_failed, login_throttled, refresh_reuse_detected, logout, session_revoked, password_changed, password_reset, email_changed, account_disabled, account_enabled, ... (README: Operating latchkey)',
    }),
    createdAt: IsoDateTime,
    ip: Nullable(Type.String()),
    userAgent: Nullable(Type.String()),
    device: DeviceName,
    sessionId: Nullable(Type.String({ description: 'The session the event is about, if any' })),
  },
  { title: 'SecurityEvent' },
)

const securityEventRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, keys } = fastify

  fastify.get(
    '/',
    {
      schema: {
        tags: ['users'],
        summary: 'Your security events, newest first',
        description: `Sign-ins, failed and throttled logins, logouts, revoked sessions, password and email changes, kept for SECURITY_EVENT_RETENTION. Pass \`nextCursor\` back as \`cursor\` for the next page; it is \`null\` on the last page.`,
        querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
        response: { 200: pageOf(SecurityEventSchema, 'SecurityEventPage'), ...errorResponses(400) },
      },
    },
    async (request) => pageSecurityEvents(db, keys, request.auth.userId, request.query),
  )
}

export default securityEventRoutes
