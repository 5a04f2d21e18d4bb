// The signed-in user's passkeys (src/auth/flows/passkeys.ts): register (after a
// password confirmation), list, rename, delete. Protected by
// routes/users/autohooks.ts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { callerOf } from '../../../../plugins/auth.js'
import {
  passkeyRegistrationOptions,
  registerPasskey,
  relyingPartyFor,
  removePasskey,
} from '../../../../src/auth/flows/passkeys.js'
import { listPasskeys, renamePasskey, toPasskeyView } from '../../../../src/auth/passkeys.js'
import { notFound } from '../../../../src/errors.js'
import {
  errorResponses,
  IdParams,
  IsoDateTime,
  Nullable,
  PASSWORD_CONFIRMATION_SECURITY,
  RegistrationResponseSchema,
  Text,
} from '../../../../src/schemas.js'

const PasskeySchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    deviceType: Type.String({ description: '`singleDevice`, or `multiDevice` for a synced passkey' }),
    backedUp: Type.Boolean(),
    createdAt: IsoDateTime,
    lastUsedAt: Nullable(IsoDateTime),
  },
  { title: 'Passkey' },
)
const PasskeyEnvelope = Type.Object({ passkey: PasskeySchema }, { title: 'PasskeyEnvelope' })
const PasskeyName = Text({ minLength: 1, maxLength: 100 })

const RegistrationOptionsSchema = Type.Object(
  {
    challenge: Type.String(),
    rp: Type.Object({ id: Type.Optional(Type.String()), name: Type.String() }),
    user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
    pubKeyCredParams: Type.Array(Type.Object({ alg: Type.Integer(), type: Type.String() })),
    timeout: Type.Optional(Type.Integer()),
    excludeCredentials: Type.Optional(
      Type.Array(
        Type.Object({
          id: Type.String(),
          type: Type.String(),
          transports: Type.Optional(Type.Array(Type.String())),
        }),
      ),
    ),
    authenticatorSelection: Type.Optional(Type.Object({}, { additionalProperties: true })),
    attestation: Type.Optional(Type.String()),
    extensions: Type.Optional(Type.Object({}, { additionalProperties: true })),
    hints: Type.Optional(Type.Array(Type.String())),
  },
  {
    title: 'PasskeyRegistrationOptions',
    description:
      'PublicKeyCredentialCreationOptionsJSON for navigator.credentials.create() (PublicKeyCredential.parseCreationOptionsFromJSON, or @simplewebauthn/browser startRegistration). Its challenge works once, for 5 minutes, for this session.',
    additionalProperties: true,
  },
)

const passkeyRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, emailFlows, config } = fastify
  const tags = ['passkeys']

  fastify.get(
    '/',
    {
      schema: {
        tags,
        summary: 'Your passkeys',
        response: { 200: Type.Object({ items: Type.Array(PasskeySchema) }, { title: 'Passkeys' }) },
      },
    },
    async (request) => ({ items: (await listPasskeys(db, request.auth.userId)).map(toPasskeyView) }),
  )

  fastify.post(
    '/registration-options',
    {
      schema: {
        tags,
        summary: 'Start registering a passkey',
        description:
          'Needs a password confirmation. A discoverable credential with user verification is asked for; passkeys you have already are excluded.',
        security: PASSWORD_CONFIRMATION_SECURITY,
        response: { 200: RegistrationOptionsSchema, ...errorResponses(403) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request) =>
      passkeyRegistrationOptions(emailFlows, callerOf(request), relyingPartyFor(config, request.headers.origin)),
  )

  fastify.post(
    '/',
    {
      schema: {
        tags,
        summary: 'Register a passkey',
        description:
          'Needs a password confirmation. Verifies the authenticator\u2019s answer to the registration options of this session; 400 PASSKEY_VERIFICATION_FAILED if it does not verify or the passkey is registered already.',
        security: PASSWORD_CONFIRMATION_SECURITY,
        body: Type.Object(
          { response: RegistrationResponseSchema, name: Type.Optional(PasskeyName) },
          { additionalProperties: false },
        ),
        response: { 201: PasskeyEnvelope, ...errorResponses(400, 403, 413, 415) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request, reply) => {
      const rp = relyingPartyFor(config, request.headers.origin)
      const passkey = await registerPasskey(emailFlows, callerOf(request), rp, request.body)
      return reply.code(201).send({ passkey })
    },
  )

  fastify.patch(
    '/:id',
    {
      schema: {
        tags,
        summary: 'Rename a passkey',
        params: IdParams,
        body: Type.Object({ name: PasskeyName }, { additionalProperties: false }),
        response: { 200: PasskeyEnvelope, ...errorResponses(400, 404, 413, 415) },
      },
    },
    async (request) => {
      const row = await renamePasskey(db, request.auth.userId, request.params.id, request.body.name)
      if (!row) throw notFound('Passkey')
      return { passkey: toPasskeyView(row) }
    },
  )

  fastify.delete(
    '/:id',
    {
      schema: {
        tags,
        summary: 'Delete a passkey',
        description: 'Needs a password confirmation. The passkey stops working at once.',
        security: PASSWORD_CONFIRMATION_SECURITY,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(403, 404) },
      },
      preHandler: fastify.requirePasswordConfirmation,
    },
    async (request, reply) => {
      if (!(await removePasskey(emailFlows, callerOf(request), request.params.id))) throw notFound('Passkey')
      return reply.code(204).send(null)
    },
  )
}

export default passkeyRoutes
