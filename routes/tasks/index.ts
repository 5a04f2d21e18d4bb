// The signed-in user's tasks. Another user's task answers 404, like a missing
// one; a listId that is not one of the caller's lists is 400 INVALID_LIST.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { createTask, deleteTask, findTask, pageTasks, updateTask } from '../../src/data/tasks.js'
import { notFound } from '../../src/errors.js'
import { errorResponses, IdParams } from '../../src/schemas.js'
import { CreateTaskBody, TaskEnvelope, TaskPage, TaskPageQuery, UpdateTaskBody } from './schema.js'

const taskRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, keys, clock } = fastify

  fastify.get(
    '/',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Your tasks, newest first',
        description:
          'Optionally filtered by `listId` and `completed`. Pass `nextCursor` back as `cursor` (with the same filters) for the next page; it is `null` on the last page.',
        querystring: TaskPageQuery,
        response: { 200: TaskPage, ...errorResponses(400) },
      },
    },
    async (request) => {
      const { limit, cursor, listId, completed } = request.query
      return pageTasks(db, keys, request.auth.userId, { listId, completed }, { limit, cursor })
    },
  )

  fastify.post(
    '/',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Create a task',
        body: CreateTaskBody,
        response: { 201: TaskEnvelope, ...errorResponses(400, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const task = await createTask(db, request.auth.userId, request.body, clock.now())
      return reply.code(201).send({ task })
    },
  )

  fastify.get(
    '/:id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'One of your tasks',
        params: IdParams,
        response: { 200: TaskEnvelope, ...errorResponses(400, 404) },
      },
    },
    async (request) => {
      const task = await findTask(db, request.auth.userId, request.params.id)
      if (!task) throw notFound('Task')
      return { task }
    },
  )

  fastify.patch(
    '/:id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Change a task',
        description: 'Only the fields given change; `listId: null` detaches the task from its list.',
        params: IdParams,
        body: UpdateTaskBody,
        response: { 200: TaskEnvelope, ...errorResponses(400, 403, 404, 413, 415) },
      },
    },
    async (request) => {
      const task = await updateTask(db, request.auth.userId, request.params.id, request.body, clock.now())
      if (!task) throw notFound('Task')
      return { task }
    },
  )

  fastify.delete(
    '/:id',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Delete a task',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(400, 403, 404) },
      },
    },
    async (request, reply) => {
      if (!(await deleteTask(db, request.auth.userId, request.params.id))) throw notFound('Task')
      return reply.code(204).send(null)
    },
  )
}

export default taskRoutes
