// The signed-in account: read it, change it (after password confirmation),
// change the password, delete it.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { changePassword } from '../../src/auth/flows/change-password.js'
import { deleteAccount } from '../../src/auth/flows/delete-account.js'
import { updateProfile } from '../../src/auth/flows/email-change.js'
import { factorsOf } from '../../src/auth/flows/second-factor.js'
import { clientOf } from '../../src/auth/security-events.js'
import { toPublicUser, withEmailVerified } from '../../src/auth/users.js'
import { notFound } from '../../src/errors.js'
import {
  DisplayNameSchema,
  EmailSchema,
  errorResponses,
  NewPasswordSchema,
  Nullable,
  PASSWORD_CONFIRMATION_SECURITY,
  trimEmailInput,
  UserSchema,
} from '../../src/schemas.js'

const UserEnvelope = Type.Object({ user: UserSchema }, { title: 'UserEnvelope' })

const FactorsSchema = Type.Object(
  {
    totp: Type.Boolean({ description: 'TOTP is on: a password login asks for a code' }),
    passkeys: Type.Integer({ description: 'Passkeys registered (GET /users/me/passkeys)' }),
    recoveryCodes: Type.Integer({ description: 'Unused recovery codes left' }),
  },
  { title: 'Factors', description: 'The second factors and passkeys of the account' },
)

const userRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, flows, tokens, emailFlows } = fastify

  fastify.get(
    '/me',
    {
      schema: {
        tags: ['users'],
        summary: 'The signed-in user',
        description: 'The user, and which second factors and passkeys the account has.',
        response: {
          200: Type.Object({ user: UserSchema, factors: FactorsSchema }, { title: 'UserWithFactors' }),
        },
      },
    },
    async (request) => {
      const [user, factors] = await Promise.all([
        withEmailVerified(db, request.auth.user),
        factorsOf(emailFlows, request.auth.userId),
      ])
      return { user: toPublicUser(user), factors }
    },
  )

  fastify.patch(
    '/me',
    {
      schema: {
        tags: ['users'],
        summary: 'Change display name or email',
        description:
          'Needs a password-confirmation token of this session. Email is trimmed and lower-cased. A new email is mailed a link and the old one a notice: with REQUIRE_EMAIL_VERIFICATION the address changes only when that link is followed (POST /auth/email-change/confirm; the answer still shows the current address), else at once, unverified. Rate-limited per new address like the other mails.',
        security: PASSWORD_CONFIRMATION_SECURITY,
        body: Type.Object(
          {
            displayName: Type.Optional(Nullable(DisplayNameSchema)),
            email: Type.Optional(EmailSchema),
          },
          { additionalProperties: false },
        ),
        response: { 200: UserEnvelope, ...errorResponses(400, 403, 409, 413, 415) },
      },
      preValidation: trimEmailInput,
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request) => {
      const { userId, user: current } = request.auth
      const user = await updateProfile(emailFlows, { userId, email: current.email, ip: request.ip }, request.body)
      if (!user) throw notFound('User')
      return { user: toPublicUser(user) }
    },
  )

  fastify.put(
    '/me/password',
    {
      schema: {
        tags: ['users'],
        summary: 'Change your password',
        description:
          'A wrong currentPassword is 401 INVALID_CREDENTIALS and counts as a failed login. Every other session of the user is revoked; this one stays.',
        body: Type.Object(
          {
            currentPassword: Type.String({ minLength: 1, maxLength: 1024 }),
            newPassword: NewPasswordSchema,
          },
          { additionalProperties: false },
        ),
        response: { 204: Type.Null({ description: 'Changed' }), ...errorResponses(400, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const { userId, sessionId, user } = request.auth
      const caller = { userId, sessionId, email: user.email, ...clientOf(request), ip: request.ip }
      await changePassword(flows, caller, request.body)
      request.log.info({ userId }, 'password changed; other sessions revoked')
      return reply.code(204).send(null)
    },
  )

  fastify.delete(
    '/me',
    {
      schema: {
        tags: ['users'],
        summary: 'Delete your account',
        description:
          'Needs a password-confirmation token of this session. Deletes the user, all its sessions, lists, tasks and secrets, and clears the auth cookies.',
        security: PASSWORD_CONFIRMATION_SECURITY,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(403) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request, reply) => {
      await deleteAccount(flows, request.auth.userId)
      request.log.info({ userId: request.auth.userId }, 'account deleted')
      tokens.clearCookies(reply)
      return reply.code(204).send(null)
    },
  )
}

export default userRoutes
