// Password reset by mail: ask (202 whatever the address), then set a new
// password with the link's token. The rules are src/auth/flows/password-reset.ts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { requestPasswordReset, resetPassword } from '../../../src/auth/flows/password-reset.js'
import { EmailSchema, errorResponses, NewPasswordSchema, trimEmailInput } from '../../../src/schemas.js'
import { Accepted, accepted } from '../email-verification/schema.js'

const passwordResetRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { emailFlows } = fastify

  fastify.post(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Ask for a password-reset mail',
        description:
          'Answers 202 with no body whether or not the address has an account, after the same work; a mail goes out only when it has one. Rate-limited per address (MAIL_RATE_LIMIT_MAX an hour, counted for any address) and per IP (AUTH_RATE_LIMIT_MAX per 15 minutes).',
        body: Type.Object({ email: EmailSchema }, { additionalProperties: false }),
        response: { 202: Accepted, ...errorResponses(400, 403, 413, 415) },
      },
      preValidation: trimEmailInput,
    },
    async (request, reply) => {
      await requestPasswordReset(emailFlows, { ip: request.ip }, request.body)
      return accepted(reply)
    },
  )

  fastify.post(
    '/confirm',
    {
      schema: {
        tags: ['auth'],
        summary: 'Set a new password with the token of a reset mail',
        description:
          'The new password follows the sign-up rules. On success every session of the user is revoked, every other reset link dies, the address counts as verified, and a notice goes to it. The token works once, within PASSWORD_RESET_TOKEN_DURATION: else 400 TOKEN_INVALID or TOKEN_EXPIRED.',
        body: Type.Object(
          {
            token: Type.String({ minLength: 1, maxLength: 512, description: 'The token from the link' }),
            newPassword: NewPasswordSchema,
          },
          { additionalProperties: false },
        ),
        response: {
          204: Type.Null({ description: 'Password set; every session ended' }),
          ...errorResponses(400, 403, 413, 415),
        },
      },
    },
    async (request, reply) => {
      await resetPassword(emailFlows, { ip: request.ip }, request.body)
      request.log.info('password reset by mail; every session revoked')
      return reply.code(204).send(null)
    },
  )
}

export default passwordResetRoutes
