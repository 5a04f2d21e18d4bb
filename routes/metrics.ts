// GET /metrics: Prometheus text format (plugins/metrics.ts). Off, it answers
// 404 like any unknown path; on (METRICS_TOKEN), only to
// `Authorization: Bearer <METRICS_TOKEN>`, compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { AppError } from '../src/errors.js'
import { errorResponses } from '../src/schemas.js'

const BEARER = /^Bearer +(\S+) *$/i
/** Equal-length digests, so the comparison takes the same time whatever was sent. */
const digest = (value: string) => createHash('sha256').update(value).digest()

const metricsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { metrics, config } = fastify
  const expected = config.metricsToken === undefined ? undefined : digest(config.metricsToken)

  fastify.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics',
        description:
          'Prometheus text format. Off (404) unless METRICS_TOKEN is set; then only with `Authorization: Bearer <METRICS_TOKEN>`.',
        // Its own token, not an access token: no scheme of the document's applies.
        security: [],
        response: {
          200: Type.String({ description: 'Prometheus text exposition format 0.0.4' }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (request, reply) => {
      // The not-found handler's very answer (plugins/errors.ts): off, the route does not show.
      if (expected === undefined || !metrics.enabled) throw new AppError(404, 'NOT_FOUND', 'Not found')
      const token = BEARER.exec(request.headers.authorization ?? '')?.[1]
      if (token === undefined || !timingSafeEqual(digest(token), expected)) {
        throw new AppError(
          401,
          'AUTH_REQUIRED',
          'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>',
          undefined,
          {
            'WWW-Authenticate': 'Bearer realm="metrics"',
          },
        )
      }
      const { contentType, body } = await metrics.scrape()
      return reply.header('cache-control', 'no-store').type(contentType).send(body)
    },
  )
}

export default metricsRoutes
