// Sign-up, login, refresh and logout: the routes that need no access token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { requestEmailVerification, requireVerifiedEmail } from '../../src/auth/flows/email-verification.js'
import { logOut } from '../../src/auth/flows/end-sessions.js'
import { logIn } from '../../src/auth/flows/log-in.js'
import { requireSecondFactor } from '../../src/auth/flows/second-factor.js'
import { signUp } from '../../src/auth/flows/sign-up.js'
import { clientOf } from '../../src/auth/security-events.js'
import { AppError } from '../../src/errors.js'
import { trimEmailInput } from '../../src/schemas.js'
import { LoginSchema, LogoutSchema, RefreshSchema, SignupSchema } from './schema.js'

const FIFTEEN_MINUTES = 15 * 60 * 1000

const authRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { flows, tokens, config, emailFlows } = fastify
  // Sign-ups per IP, counted after validation so a malformed request costs nothing.
  const signupLimit = fastify.strictRateLimit({ max: config.authRateLimitMax, timeWindow: FIFTEEN_MINUTES })

  fastify.post(
    '/signup',
    { schema: SignupSchema, preValidation: trimEmailInput, preHandler: signupLimit },
    async (request, reply) => {
      const user = await signUp(flows, request.body)
      request.log.info({ userId: user.id }, 'user signed up')
      // Counted by the sign-up limit already, not by the mail limit.
      await requestEmailVerification(emailFlows, user, { ip: request.ip, throttled: false })
      return reply.code(201).send(await tokens.startSession(request, reply, user, 'signup'))
    },
  )

  fastify.post('/login', { schema: LoginSchema, preValidation: trimEmailInput }, async (request, reply) => {
    const client = { ...clientOf(request), ip: request.ip, deviceTokenHash: tokens.deviceTokenHash(request) }
    const user = await logIn(flows, client, request.body)
    // Only after the right password: the answer says nothing to a guesser.
    requireVerifiedEmail(config, user.email_verified === true)
    return (
      (await requireSecondFactor(emailFlows, user, 'password')) ?? tokens.startSession(request, reply, user, 'password')
    )
  })

  fastify.post('/refresh', { schema: RefreshSchema }, async (request, reply) => {
    const { access } = await tokens.refresh(request, reply)
    return { accessToken: access.token, accessTokenExpiresAt: access.expiresAt }
  })

  fastify.post(
    '/logout',
    {
      schema: LogoutSchema,
      // No body at all is the common case: it means the defaults.
      preValidation: async (request) => {
        request.body ??= {}
      },
    },
    async (request, reply) => {
      const scope = request.body.scope ?? 'current'
      const session = await tokens.identifySession(request)
      // `current` is idempotent; `others` and `all` need to know whose sessions.
      if (!session && scope !== 'current') {
        throw new AppError(401, 'AUTH_REQUIRED', 'A valid access token or refresh cookie is required', undefined, {
          'WWW-Authenticate': 'Bearer realm="latchkey"',
        })
      }
      if (session) await logOut(flows, { ...session, ...clientOf(request) }, scope)
      // `others` keeps this session, and so its cookies.
      if (scope === 'current' || scope === 'all') tokens.clearCookies(reply)
      return reply.code(204).send(null)
    },
  )
}

export default authRoutes
