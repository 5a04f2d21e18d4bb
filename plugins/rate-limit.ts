// Per-client-IP rate limit on every route (RATE_LIMIT_MAX a minute), counted
// before any other work: in Redis when REDIS_URL is set (shared by every
// instance; while Redis is down the limit is skipped, failing open, because
// refusing every request would turn a cache outage into a full outage), else in
// this process. `strictRateLimit` builds an extra, stricter limit for
// one route (sign-ups, password confirmations) that counts on top of the global
// one: the plugin's own `rateLimit()` handler skips a request the global limit
// already counted.
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError } from '../src/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    strictRateLimit(options: { max: number; timeWindow: number }): (request: FastifyRequest) => Promise<void>
  }
}

const rateLimited = (seconds: number) =>
  new AppError(429, 'RATE_LIMITED', `Too many requests; retry in ${seconds} seconds`, undefined, {
    'Retry-After': String(seconds),
  })

async function rateLimitPlugin(fastify: FastifyInstance): Promise<void> {
  const { redis, config } = fastify
  if (!redis && config.database.kind === 'postgres') {
    fastify.log.info(
      'REDIS_URL is not set: the per-IP rate limit counts per instance (failed-login limits are shared through PostgreSQL)',
    )
  }
  await fastify.register(rateLimit, {
    global: true,
    ...(redis ? { redis, nameSpace: 'latchkey:ip:', skipOnError: true } : {}),
    max: fastify.config.rateLimitMax,
    timeWindow: 60_000,
    hook: 'onRequest',
    errorResponseBuilder: (_request, context) =>
      new AppError(429, 'RATE_LIMITED', `Too many requests; retry in ${context.after}`),
  })

  fastify.decorate('strictRateLimit', (options: { max: number; timeWindow: number }) => {
    const check = fastify.createRateLimit(options)
    return async (request: FastifyRequest) => {
      const result = await check(request)
      if (!result.isAllowed && result.isExceeded) throw rateLimited(Math.max(1, result.ttlInSeconds))
    }
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', dependencies: ['redis'] })
