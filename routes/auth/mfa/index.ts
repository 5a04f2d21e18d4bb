// The second step of a login with TOTP on (src/auth/flows/second-factor.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { verifySecondFactor } from '../../../src/auth/flows/second-factor.js'
import { clientOf } from '../../../src/auth/security-events.js'
import { AppError } from '../../../src/errors.js'
import { errorResponses, TotpCodeSchema } from '../../../src/schemas.js'
import { SignedInSchema } from '../schema.js'

const mfaRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { tokens, emailFlows } = fastify

  fastify.post(
    '/verify',
    {
      schema: {
        tags: ['auth'],
        summary: 'Finish a login with a TOTP code or a recovery code',
        description:
          'Takes the `mfaToken` a login answered with exactly one of `code` (six digits from the authenticator app; each code works once, one 30-second step of clock drift either way is accepted) or `recoveryCode` (works once; the account is mailed a notice). Signs in like POST /auth/login. A wrong code is 401 MFA_CODE_INVALID and counts as a failed login of the account (the same limits, 429 past them); the mfaToken ends after 5 wrong codes, 5 minutes or one success (401 MFA_TOKEN_INVALID).',
        body: Type.Object(
          {
            mfaToken: Type.String({ minLength: 1, maxLength: 128 }),
            code: Type.Optional(TotpCodeSchema),
            recoveryCode: Type.Optional(
              Type.String({ minLength: 1, maxLength: 32, description: 'A recovery code, like abcde-12345' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: SignedInSchema, ...errorResponses(400, 401, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const { mfaToken, code, recoveryCode } = request.body
      if ((code === undefined) === (recoveryCode === undefined)) {
        throw new AppError(400, 'VALIDATION_FAILED', 'Give exactly one of code and recoveryCode', [
          { field: code === undefined ? 'code' : 'recoveryCode', message: 'give exactly one of code and recoveryCode' },
        ])
      }
      const client = { ...clientOf(request), ip: request.ip, deviceTokenHash: tokens.deviceTokenHash(request) }
      const { user, method } = await verifySecondFactor(emailFlows, client, { mfaToken, code, recoveryCode })
      return tokens.startSession(request, reply, user, method)
    },
  )
}

export default mfaRoutes
