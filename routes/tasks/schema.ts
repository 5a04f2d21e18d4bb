// Schemas of the /tasks routes.
import { Type } from '@sinclair/typebox'
import { Id, IsoDateTime, Nullable, PageQuery, pageOf, Text } from '../../src/schemas.js'

const Title = Text({ minLength: 1, maxLength: 500 })
const Completed = Type.Boolean()
const ListId = Nullable(Id, { description: 'One of your lists (else 400 INVALID_LIST); null for none' })
const DueAt = Nullable(Type.String({ format: 'date-time', maxLength: 64 }), {
  description: 'ISO 8601 date-time with a time zone; null for none',
})
const Notes = Nullable(Text({ maxLength: 10000 }), { description: 'Up to 10000 characters' })

export const TaskSchema = Type.Object(
  {
    id: Type.String(),
    title: Type.String(),
    completed: Type.Boolean(),
    listId: Nullable(Type.String()),
    dueAt: Nullable(IsoDateTime),
    notes: Nullable(Type.String()),
    createdAt: IsoDateTime,
    updatedAt: IsoDateTime,
  },
  { title: 'Task' },
)

export const TaskEnvelope = Type.Object({ task: TaskSchema }, { title: 'TaskEnvelope' })
export const TaskPage = pageOf(TaskSchema, 'TaskPage')
export const TaskPageQuery = Type.Object(
  {
    ...PageQuery,
    listId: Type.Optional(Type.String({ ...Id, description: 'Only tasks of this list (none if it is not yours)' })),
    completed: Type.Optional(Type.Boolean({ description: 'Only completed (true) or open (false) tasks' })),
  },
  { additionalProperties: false },
)

export const CreateTaskBody = Type.Object(
  {
    title: Title,
    completed: Type.Optional(Completed),
    listId: Type.Optional(ListId),
    dueAt: Type.Optional(DueAt),
    notes: Type.Optional(Notes),
  },
  { additionalProperties: false, title: 'CreateTask' },
)

export const UpdateTaskBody = Type.Object(
  {
    title: Type.Optional(Title),
    completed: Type.Optional(Completed),
    listId: Type.Optional(ListId),
    dueAt: Type.Optional(DueAt),
    notes: Type.Optional(Notes),
  },
  { additionalProperties: false, title: 'UpdateTask' },
)
