// Email verification: ask for another verification mail (signed in), and
// follow the link's token (anyone holding it). The request route alone needs an
// access token, so it takes `authenticate` itself rather than from an autohooks
// file, which would protect the confirmation too.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { confirmEmailVerification, requestEmailVerification } from '../../../src/auth/flows/email-verification.js'
import { toPublicUser } from '../../../src/auth/users.js'
import { ACCESS_SECURITY, errorResponses } from '../../../src/schemas.js'
import { Accepted, accepted, MailTokenBody, UserEnvelope } from './schema.js'

const emailVerificationRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { emailFlows } = fastify

  fastify.post(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Send the verification mail again',
        description:
          'Queues a mail with a link to PUBLIC_URL that verifies the current address (none if it is verified already). Rate-limited per address (MAIL_RATE_LIMIT_MAX an hour) and per IP.',
        security: ACCESS_SECURITY,
        response: { 202: Accepted, ...errorResponses(401, 403) },
      },
      onRequest: fastify.authenticate,
    },
    async (request, reply) => {
      await requestEmailVerification(emailFlows, request.auth.user, { ip: request.ip, throttled: true })
      return accepted(reply)
    },
  )

  fastify.post(
    '/confirm',
    {
      schema: {
        tags: ['auth'],
        summary: 'Verify the address with the token of a verification mail',
        description:
          "The token works once, within EMAIL_VERIFICATION_TOKEN_DURATION, and only while the address it was mailed to is still the account's. 400 TOKEN_INVALID or TOKEN_EXPIRED otherwise.",
        body: MailTokenBody,
        response: { 200: UserEnvelope, ...errorResponses(400, 403, 413, 415) },
      },
    },
    async (request) => {
      const user = await confirmEmailVerification(emailFlows, request.body.token)
      request.log.info({ userId: user.id }, 'email verified')
      return { user: toPublicUser(user) }
    },
  )
}

export default emailVerificationRoutes
