// The signed-in user's TOTP factor and recovery codes
// (src/auth/flows/second-factor.ts); protected by routes/users/autohooks.ts, and
// every route here needs a password confirmation as well.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { callerOf } from '../../../../plugins/auth.js'
import {
  confirmTotp,
  disableTotp,
  regenerateRecoveryCodes,
  setUpTotp,
} from '../../../../src/auth/flows/second-factor.js'
import { errorResponses, PASSWORD_CONFIRMATION_SECURITY, TotpCodeSchema } from '../../../../src/schemas.js'

const RecoveryCodesSchema = Type.Object(
  {
    recoveryCodes: Type.Array(Type.String(), {
      minItems: 10,
      maxItems: 10,
      description: 'Ten single-use codes, shown this once (only their hashes are kept)',
    }),
  },
  { title: 'RecoveryCodes' },
)

const mfaRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { emailFlows, config } = fastify
  const confirmed = { security: PASSWORD_CONFIRMATION_SECURITY, tags: ['mfa'] }

  fastify.post(
    '/totp',
    {
      schema: {
        ...confirmed,
        summary: 'Start TOTP set-up',
        description:
          'A new secret (base32) and its otpauth:// URI for an authenticator app (the account page shows it as a QR code). TOTP is not on until POST /users/me/mfa/totp/confirm; asking again before that replaces the secret. 409 TOTP_ALREADY_ENABLED when it is on.',
        response: {
          200: Type.Object(
            {
              secret: Type.String({ description: 'Base32, for typing into the app' }),
              otpauthUri: Type.String({ description: 'otpauth://totp/... (SHA1, 6 digits, 30 s)' }),
            },
            { title: 'TotpSetup' },
          ),
          ...errorResponses(403, 409),
        },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request) => setUpTotp(emailFlows, callerOf(request), config.jwtIssuer),
  )

  fastify.post(
    '/totp/confirm',
    {
      schema: {
        ...confirmed,
        summary: 'Turn TOTP on with a first code',
        description:
          'A code from the app proves it holds the secret: TOTP is on, and ten recovery codes are answered, this once. 401 MFA_CODE_INVALID for a wrong code; 409 TOTP_NOT_ENABLED without a pending set-up.',
        body: Type.Object({ code: TotpCodeSchema }, { additionalProperties: false }),
        response: { 200: RecoveryCodesSchema, ...errorResponses(400, 403, 409, 413, 415) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request) => ({ recoveryCodes: await confirmTotp(emailFlows, callerOf(request), request.body.code) }),
  )

  fastify.delete(
    '/totp',
    {
      schema: {
        ...confirmed,
        summary: 'Turn TOTP off',
        description: 'The secret and the recovery codes are deleted. 409 TOTP_NOT_ENABLED when it is not on.',
        response: { 204: Type.Null({ description: 'Off' }), ...errorResponses(403, 409) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request, reply) => {
      await disableTotp(emailFlows, callerOf(request))
      return reply.code(204).send(null)
    },
  )

  fastify.post(
    '/recovery-codes',
    {
      schema: {
        ...confirmed,
        summary: 'Make new recovery codes',
        description:
          'Ten new codes, shown this once; the old ones stop working. 409 TOTP_NOT_ENABLED when TOTP is off.',
        response: { 200: RecoveryCodesSchema, ...errorResponses(403, 409) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request) => ({ recoveryCodes: await regenerateRecoveryCodes(emailFlows, callerOf(request)) }),
  )
}

export default mfaRoutes
