// The signed-in user's task lists. Another user's list answers 404, like a missing one.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { createList, deleteList, findList, pageLists, updateList } from '../../src/data/lists.js'
import { notFound } from '../../src/errors.js'
import { errorResponses, IdParams } from '../../src/schemas.js'
import { CreateListBody, ListEnvelope, ListPage, ListPageQuery, UpdateListBody } from './schema.js'

const listRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, keys, clock } = fastify

  fastify.get(
    '/',
    {
      schema: {
        tags: ['lists'],
        summary: 'Your lists, newest first',
        description: 'Pass `nextCursor` back as `cursor` for the next page; it is `null` on the last page.',
        querystring: ListPageQuery,
        response: { 200: ListPage, ...errorResponses(400) },
      },
    },
    async (request) => pageLists(db, keys, request.auth.userId, request.query),
  )

  fastify.post(
    '/',
    {
      schema: {
        tags: ['lists'],
        summary: 'Create a list',
        body: CreateListBody,
        response: { 201: ListEnvelope, ...errorResponses(400, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const list = await createList(db, request.auth.userId, request.body, clock.now())
      return reply.code(201).send({ list })
    },
  )

  fastify.get(
    '/:id',
    {
      schema: {
        tags: ['lists'],
        summary: 'One of your lists',
        params: IdParams,
        response: { 200: ListEnvelope, ...errorResponses(400, 404) },
      },
    },
    async (request) => {
      const list = await findList(db, request.auth.userId, request.params.id)
      if (!list) throw notFound('List')
      return { list }
    },
  )

  fastify.patch(
    '/:id',
    {
      schema: {
        tags: ['lists'],
        summary: 'Change a list',
        description: 'Only the fields given change; an empty body changes nothing.',
        params: IdParams,
        body: UpdateListBody,
        response: { 200: ListEnvelope, ...errorResponses(400, 403, 404, 413, 415) },
      },
    },
    async (request) => {
      const list = await updateList(db, request.auth.userId, request.params.id, request.body, clock.now())
      if (!list) throw notFound('List')
      return { list }
    },
  )

  fastify.delete(
    '/:id',
    {
      schema: {
        tags: ['lists'],
        summary: 'Delete a list and its tasks',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted, with its tasks' }), ...errorResponses(400, 403, 404) },
      },
    },
    async (request, reply) => {
      if (!(await deleteList(db, request.auth.userId, request.params.id))) throw notFound('List')
      return reply.code(204).send(null)
    },
  )
}

export default listRoutes
