// Per-client-IP rate limit on every route (RATE_LIMIT_MAX a minute), counted
// before any other work. Routes add stricter limits with `fastify.rateLimit()`.
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { AppError } from '../src/errors.js'

async function rateLimitPlugin(fastify: FastifyInstance): Promise<void> {
  await fastify.register(rateLimit, {
    global: true,
    max: fastify.config.rateLimitMax,
    timeWindow: 60_000,
    hook: 'onRequest',
    errorResponseBuilder: (_request, context) =>
      new AppError(429, 'RATE_LIMITED', `Too many requests; retry in ${context.after}`),
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit' })
