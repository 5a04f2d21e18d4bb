// Re-authentication for sensitive changes: a short-lived token, bound to the
// current session, proving the user typed the password recently (or a TOTP
// code, or used one of their passkeys, so a user without the password at hand
// can still change their settings).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { callerOf } from '../../../plugins/auth.js'
import { confirmPassword } from '../../../src/auth/flows/change-password.js'
import { authenticateWithPasskey, relyingPartyFor } from '../../../src/auth/flows/passkeys.js'
import { confirmWithCode } from '../../../src/auth/flows/second-factor.js'
import {
  ACCESS_SECURITY,
  AuthenticationResponseSchema,
  errorResponses,
  IsoDateTime,
  PASSWORD_CONFIRMATION_SECURITY,
  TotpCodeSchema,
} from '../../../src/schemas.js'

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
  const { flows, tokens, config, emailFlows } = fastify
  const confirmationLimit = fastify.strictRateLimit({ max: config.authRateLimitMax, timeWindow: FIFTEEN_MINUTES })

  fastify.post(
    '/',
    {
      schema: {
        tags: ['auth'],
        summary: 'Confirm your password',
        description:
          'Answers a token of JWT_PASSWORD_CONFIRMATION_TOKEN_DURATION for this session, and sets the `password_confirmation_token` cookie. Give exactly one of: `password`; `code`, a TOTP code (with TOTP on); or `passkey`, the answer to POST /auth/passkeys/authentication-options by one of your passkeys. A wrong password is 401 INVALID_CREDENTIALS, a wrong code 401 MFA_CODE_INVALID, and both count as a failed login; a passkey that does not verify is 401 PASSKEY_VERIFICATION_FAILED.',
        security: ACCESS_SECURITY,
        body: Type.Object(
          {
            password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
            code: Type.Optional(TotpCodeSchema),
            passkey: Type.Optional(AuthenticationResponseSchema),
          },
          { additionalProperties: false, minProperties: 1, maxProperties: 1 },
        ),
        response: { 200: ConfirmationSchema, ...errorResponses(400, 401, 403, 409, 413, 415) },
      },
      preHandler: confirmationLimit,
    },
    async (request, reply) => {
      const caller = callerOf(request)
      const { password, code, passkey } = request.body
      if (password !== undefined) await confirmPassword(flows, caller, password)
      else if (code !== undefined) await confirmWithCode(emailFlows, caller, code)
      else if (passkey !== undefined) {
        await authenticateWithPasskey(
          emailFlows,
          relyingPartyFor(config, request.headers.origin),
          passkey,
          caller.userId,
        )
      }
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
