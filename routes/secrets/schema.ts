// Schemas of the /secrets routes.
import { Type } from '@sinclair/typebox'
import { IsoDateTime, Nullable, PageQuery, pageOf } from '../../src/schemas.js'

const Message = Type.String({ minLength: 1, maxLength: 10000 })
const Title = Nullable(Type.String({ maxLength: 200 }), { description: 'Up to 200 characters; null clears it' })

export const SecretSchema = Type.Object(
  {
    id: Type.String(),
    title: Nullable(Type.String()),
    message: Type.String(),
    createdAt: IsoDateTime,
    updatedAt: IsoDateTime,
  },
  { title: 'Secret' },
)

export const SecretEnvelope = Type.Object({ secret: SecretSchema }, { title: 'SecretEnvelope' })
export const SecretPage = pageOf(SecretSchema, 'SecretPage')
export const SecretPageQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })

export const CreateSecretBody = Type.Object(
  { message: Message, title: Type.Optional(Title) },
  { additionalProperties: false, title: 'CreateSecret' },
)

export const UpdateSecretBody = Type.Object(
  { message: Type.Optional(Message), title: Type.Optional(Title) },
  { additionalProperties: false, title: 'UpdateSecret' },
)
