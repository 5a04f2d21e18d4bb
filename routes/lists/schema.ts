// Schemas of the /lists routes.
import { Type } from '@sinclair/typebox'
import { IsoDateTime, Nullable, PageQuery, pageOf, Text } from '../../src/schemas.js'

const Title = Text({ minLength: 1, maxLength: 200 })
const Description = Nullable(Text({ maxLength: 2000 }), { description: 'Up to 2000 characters; null clears it' })

export const ListSchema = Type.Object(
  {
    id: Type.String(),
    title: Type.String(),
    description: Nullable(Type.String()),
    createdAt: IsoDateTime,
    updatedAt: IsoDateTime,
  },
  { title: 'List' },
)

export const ListEnvelope = Type.Object({ list: ListSchema }, { title: 'ListEnvelope' })
export const ListPage = pageOf(ListSchema, 'ListPage')
export const ListPageQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })

export const CreateListBody = Type.Object(
  { title: Title, description: Type.Optional(Description) },
  { additionalProperties: false, title: 'CreateList' },
)

export const UpdateListBody = Type.Object(
  { title: Type.Optional(Title), description: Type.Optional(Description) },
  { additionalProperties: false, title: 'UpdateList' },
)
