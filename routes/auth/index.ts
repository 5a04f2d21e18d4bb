// Sign-up, login, refresh and logout: the routes that need no access token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { passwordWeakness } from '../../src/auth/passwords.js'
import { revokeSession, revokeUserSessions } from '../../src/auth/sessions.js'
import { createUser, findUserByEmail, normalizeEmail, setPasswordHash } from '../../src/auth/users.js'
import { AppError, invalidCredentials, loginThrottled, weakPassword } from '../../src/errors.js'
import { trimEmailInput } from '../../src/schemas.js'
import { LoginSchema, LogoutSchema, RefreshSchema, SignupSchema } from './schema.js'

const FIFTEEN_MINUTES = 15 * 60 * 1000

const authRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { store, passwords, loginThrottle, tokens, config } = fastify
  // Sign-ups per IP, counted after validation so a malformed request costs nothing.
  const signupLimit = fastify.strictRateLimit({ max: config.authRateLimitMax, timeWindow: FIFTEEN_MINUTES })

  fastify.post(
    '/signup',
    { schema: SignupSchema, preValidation: trimEmailInput, preHandler: signupLimit },
    async (request, reply) => {
      const email = normalizeEmail(request.body.email)
      const weakness = await passwordWeakness(request.body.password)
      if (weakness) throw weakPassword('password', weakness)
      if (findUserByEmail(store, email)) throw new AppError(409, 'EMAIL_TAKEN', 'That email is already registered')
      const passwordHash = await passwords.hash(request.body.password)
      const user = createUser(store, { email, displayName: request.body.displayName ?? null, passwordHash }, Date.now())
      request.log.info({ userId: user.id }, 'user signed up')
      return reply.code(201).send(tokens.startSession(request, reply, user))
    },
  )

  fastify.post('/login', { schema: LoginSchema, preValidation: trimEmailInput }, async (request, reply) => {
    const email = normalizeEmail(request.body.email)
    const wait = await loginThrottle.attempt(email)
    if (wait > 0) throw loginThrottled(wait)
    const user = findUserByEmail(store, email)
    // Unknown emails are verified against a dummy hash: same answer, same time.
    const valid = await passwords.verify(user?.password_hash ?? null, request.body.password)
    if (!user || !valid) throw invalidCredentials()
    await loginThrottle.succeeded(email)
    if (passwords.needsRehash(user.password_hash)) {
      setPasswordHash(store, user.id, await passwords.hash(request.body.password), user.updated_at)
    }
    return tokens.startSession(request, reply, user)
  })

  fastify.post('/refresh', { schema: RefreshSchema }, async (request, reply) => {
    const { access } = tokens.refresh(request, reply)
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
      const session = tokens.identifySession(request)
      const at = Date.now()
      if (scope === 'current') {
        if (session) revokeSession(store, session.userId, session.sessionId, at)
        tokens.clearCookies(reply)
        return reply.code(204).send(null)
      }
      if (!session) {
        throw new AppError(401, 'AUTH_REQUIRED', 'A valid access token or refresh cookie is required', undefined, {
          'WWW-Authenticate': 'Bearer realm="latchkey"',
        })
      }
      revokeUserSessions(store, session.userId, scope === 'others' ? session.sessionId : null, at)
      if (scope === 'all') tokens.clearCookies(reply)
      return reply.code(204).send(null)
    },
  )
}

export default authRoutes
