// Sign in with a passkey and no password (src/auth/flows/passkeys.ts): ask for
// options, let the browser's authenticator answer them, send the answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { requireVerifiedEmail } from '../../../src/auth/flows/email-verification.js'
import {
  authenticateWithPasskey,
  passkeyAuthenticationOptions,
  relyingPartyFor,
} from '../../../src/auth/flows/passkeys.js'
import { AuthenticationResponseSchema, errorResponses } from '../../../src/schemas.js'
import { SignedInSchema } from '../schema.js'

export const AuthenticationOptionsSchema = Type.Object(
  {
    challenge: Type.String(),
    timeout: Type.Optional(Type.Integer()),
    rpId: Type.Optional(Type.String()),
    allowCredentials: Type.Optional(
      Type.Array(
        Type.Object({
          id: Type.String(),
          type: Type.String(),
          transports: Type.Optional(Type.Array(Type.String())),
        }),
      ),
    ),
    userVerification: Type.Optional(Type.String()),
  },
  {
    title: 'PasskeyAuthenticationOptions',
    description:
      'PublicKeyCredentialRequestOptionsJSON for navigator.credentials.get() (PublicKeyCredential.parseRequestOptionsFromJSON, or @simplewebauthn/browser startAuthentication). Its challenge works once, for 5 minutes, on any instance.',
    additionalProperties: true,
  },
)

const passkeyLoginRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { tokens, emailFlows, config } = fastify

  fastify.post(
    '/authentication-options',
    {
      schema: {
        tags: ['passkeys'],
        summary: 'Start a passkey sign-in (or a passkey step-up)',
        description:
          'Options for any passkey of this relying party (discoverable credentials: no email is asked). The same options serve POST /auth/passkeys/login and POST /auth/password-confirmation with `passkey`.',
        response: { 200: AuthenticationOptionsSchema, ...errorResponses(403) },
      },
    },
    async (request) => passkeyAuthenticationOptions(emailFlows, relyingPartyFor(config, request.headers.origin)),
  )

  fastify.post(
    '/login',
    {
      schema: {
        tags: ['passkeys'],
        summary: 'Sign in with a passkey',
        description:
          'Verifies the authenticator\u2019s answer (user verification required, so a passkey is both factors: no TOTP code is asked) and signs in like POST /auth/login. Anything that does not verify (a used or expired challenge, another origin, an unknown passkey, a bad signature, a counter that went back) is 401 PASSKEY_VERIFICATION_FAILED.',
        body: Type.Object({ response: AuthenticationResponseSchema }, { additionalProperties: false }),
        response: { 200: SignedInSchema, ...errorResponses(400, 401, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const rp = relyingPartyFor(config, request.headers.origin)
      const user = await authenticateWithPasskey(emailFlows, rp, request.body.response)
      requireVerifiedEmail(config, user.email_verified)
      return tokens.startSession(request, reply, user, 'passkey')
    },
  )
}

export default passkeyLoginRoutes
