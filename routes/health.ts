// Liveness (the process answers) and readiness (the database answers).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { AppError } from '../src/errors.js'
import { errorResponses } from '../src/schemas.js'

const Status = Type.Object({ status: Type.String() }, { title: 'Status' })

const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/health',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        response: { 200: Status, ...errorResponses() },
      },
    },
    async () => ({ status: 'ok' }),
  )
  fastify.get(
    '/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers',
        response: { 200: Status, ...errorResponses(503) },
      },
    },
    async () => {
      if (!fastify.store.ping()) throw new AppError(503, 'SERVICE_UNAVAILABLE', 'The database does not answer')
      return { status: 'ready' }
    },
  )
}

export default healthRoutes
