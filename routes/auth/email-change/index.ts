// Confirming an email change (asked with PATCH /users/me under
// REQUIRE_EMAIL_VERIFICATION) with the token mailed to the new address.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { confirmEmailChange } from '../../../src/auth/flows/email-change.js'
import { toPublicUser } from '../../../src/auth/users.js'
import { errorResponses } from '../../../src/schemas.js'
import { MailTokenBody, UserEnvelope } from '../email-verification/schema.js'

const emailChangeRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { emailFlows } = fastify

  fastify.post(
    '/confirm',
    {
      schema: {
        tags: ['auth'],
        summary: 'Switch to the new address with the token mailed to it',
        description:
          "The new address becomes the account's, verified. 409 EMAIL_TAKEN if another account has taken it meanwhile; 400 TOKEN_INVALID or TOKEN_EXPIRED (EMAIL_VERIFICATION_TOKEN_DURATION) for a dead link.",
        body: MailTokenBody,
        response: { 200: UserEnvelope, ...errorResponses(400, 403, 409, 413, 415) },
      },
    },
    async (request) => {
      const user = await confirmEmailChange(emailFlows, request.body.token)
      request.log.info({ userId: user.id }, 'email changed')
      return { user: toPublicUser(user) }
    },
  )
}

export default emailChangeRoutes
