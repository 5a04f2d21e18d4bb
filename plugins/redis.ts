// The Redis connection that shares limits between instances (REDIS_URL); absent
// without it. Commands fail at once while Redis is down instead of queueing
// (the limits then fall back as src/limits/counters.ts and plugins/rate-limit.ts
// say), and `/ready` reports it.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis | undefined
  }
}

async function redis(fastify: FastifyInstance): Promise<void> {
  const url = fastify.config.redisUrl
  if (url === undefined) {
    fastify.decorate('redis', undefined)
    return
  }
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    // Reconnect for ever, at most every 2 s.
    retryStrategy: (times) => Math.min(times * 100, 2_000),
  })
  let warned = false
  client.on('error', (error) => {
    if (warned) return
    warned = true
    fastify.log.warn({ err: error }, 'redis is not answering; limits fall back to this instance')
  })
  client.on('ready', () => {
    if (warned) fastify.log.info('redis answers again')
    warned = false
  })
  fastify.decorate('redis', client)
  fastify.addHook('onClose', async () => {
    client.disconnect()
  })
}

export default fp(redis, { name: 'redis' })
