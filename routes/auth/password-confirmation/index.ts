// Re-authentication for sensitive changes: a short-lived token, bound to the
// current session, proving the user typed the password recently.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { confirmPassword } from '../../../src/auth/flows/change-password.js'
import { clientOf } from '../../../src/auth/security-events.js'
import { ACCESS_SECURITY, errorResponses, IsoDateTime, PASSWORD_CONFIRMATION_SECURITY } from '../../../src/schemas.js'

const ConfirmationSchema = Type.Object(
  {
    passwordConfirmationToken: Type.String({
      description: 'Send as X-Password-Confirmation (also set as the password_confirmation_token cookie)',
    }),
    expiresAt: IsoDateTime,
  },
  {
    title: 'PasswordConfirmation',
    description: 'A password-confirmation token of this session; the password_confirmation_token cookie is set',
  },
)

const FIFTEEN_MINUTES = 15 * 60 * 1000

const passwordConfirmationRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { flows, tokens, config } = fastify
  const confirmationLimit = fastify.strictRateLimit({ max: config.authRateLimitMax, timeWindow: FIFTEEN_MINUTES })

  fastify.post(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Confirm your password',
        description:
          'Answers a token of JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION for this session, and sets the `password_confirmation_token` cookie. A wrong password is 401 INVALID_CREDENTIALS and counts as a failed login.',
        security: ACCESS_SECURITY,
        body: Type.Object(
          { password: Type.String({ minLength: 1, maxLength: 1024 }) },
          { additionalProperties: false },
        ),
        response: { 200: ConfirmationSchema, ...errorResponses(400, 401, 403, 413, 415) },
      },
      preHandler: confirmationLimit,
    },
    async (request, reply) => {
      const { userId, sessionId, user } = request.auth
      const caller = { userId, sessionId, email: user.email, ...clientOf(request), ip: request.ip }
      await confirmPassword(flows, caller, request.body.password)
      const issued = tokens.issuePasswordConfirmation(reply, request.auth)
      return { passwordConfirmationToken: issued.token, expiresAt: issued.expiresAt }
    },
  )

  fastify.post(
    '/refresh',
    {
      schema: {
        tags: ['auth'],
        summary: 'Extend a password confirmation',
        description: 'Answers a fresh password-confirmation token with a new full lifetime.',
        security: PASSWORD_CONFIRMATION_SECURITY,
        response: { 200: ConfirmationSchema, ...errorResponses(403) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request, reply) => {
      const issued = tokens.issuePasswordConfirmation(reply, request.auth)
      return { passwordConfirmationToken: issued.token, expiresAt: issued.expiresAt }
    },
  )
}

export default passwordConfirmationRoutes
