// Passwordless sign-in by mail (off with SIGN_IN_LINKS=false: then these
// routes do not exist). The confirmation signs in exactly like a login: the
// same session, tokens, cookies and response.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { requireSecondFactor } from '../../../src/auth/flows/second-factor.js'
import { requestSignInLink, signInWithLink } from '../../../src/auth/flows/sign-in-link.js'
import { EmailSchema, errorResponses, trimEmailInput } from '../../../src/schemas.js'
import { Accepted, accepted, MailTokenBody } from '../email-verification/schema.js'
import { LoginSchema } from '../schema.js'

const signInLinkRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { emailFlows, tokens, config } = fastify
  if (!config.signInLinks) return

  fastify.post(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Ask for a sign-in link by mail',
        description:
          'Answers 202 with no body whether or not the address has an account, after the same work; a mail goes out only when it has one. Rate-limited like the password reset.',
        body: Type.Object({ email: EmailSchema }, { additionalProperties: false }),
        response: { 202: Accepted, ...errorResponses(400, 403, 413, 415) },
      },
      preValidation: trimEmailInput,
    },
    async (request, reply) => {
      await requestSignInLink(emailFlows, { ip: request.ip }, request.body)
      return accepted(reply)
    },
  )

  fastify.post(
    '/confirm',
    {
      schema: {
        tags: ['auth'],
        summary: 'Sign in with the token of a sign-in link',
        description:
          'Signs in like POST /auth/login (the same body; sets the access_token and refresh_token cookies; with TOTP on, answers `mfaRequired` instead) and verifies the address. The token works once, within SIGN_IN_LINK_TOKEN_DURATION: else 400 TOKEN_INVALID or TOKEN_EXPIRED.',
        body: MailTokenBody,
        response: { 200: LoginSchema.response[200], ...errorResponses(400, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const user = await signInWithLink(emailFlows, request.body.token)
      request.log.info({ userId: user.id }, 'signed in by mailed link')
      return (await requireSecondFactor(emailFlows, user, 'link')) ?? tokens.startSession(request, reply, user, 'link')
    },
  )
}

export default signInLinkRoutes
