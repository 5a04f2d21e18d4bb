// Liveness (the process answers) and readiness: the database answers, its disk
// is not full and it has not answered that it is damaged (and Redis answers).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { AppError } from '../src/errors.js'
import { errorResponses } from '../src/schemas.js'

/** True without Redis configured; else whether it answers PING within a second. */
async function pingRedis(fastify: FastifyInstance): Promise<boolean> {
  if (!fastify.redis) return true
  if (fastify.redis.status !== 'ready') return false
  try {
    const answer = await Promise.race([
      fastify.redis.ping(),
      new Promise<string>((resolve) => setTimeout(resolve, 1_000, 'timeout').unref()),
    ])
    return answer === 'PONG'
  } catch {
    return false
  }
}

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
        summary: 'Readiness: the database (and Redis, when configured) answers, and can write',
        response: { 200: Status, ...errorResponses(503) },
      },
    },
    async () => {
      const [fault, redis] = await Promise.all([fastify.databaseHealth.check(), pingRedis(fastify)])
      if (!redis) throw new AppError(503, 'SERVICE_UNAVAILABLE', 'Redis does not answer')
      if (fault?.kind === 'storage-full') {
        throw new AppError(503, 'STORAGE_FULL', 'The disk that holds the database is full; writes fail', undefined, {
          'Retry-After': '60',
        })
      }
      if (fault?.kind === 'damaged') {
        throw new AppError(503, 'SERVICE_UNAVAILABLE', `The database answers that it is damaged (${fault.code})`)
      }
      if (fault) throw new AppError(503, 'SERVICE_UNAVAILABLE', 'The database does not answer')
      return { status: 'ready' }
    },
  )
}

export default healthRoutes
