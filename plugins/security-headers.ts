// Helmet's defaults on every response, errors included, and `Cache-Control:
// no-store` unless a route chose otherwise: API answers carry tokens or user data.
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

async function securityHeaders(fastify: FastifyInstance): Promise<void> {
  await fastify.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      // With COOKIE_SECURE=false the server is meant to be reached over plain
      // http (local development); upgrading the page's own assets to https there
      // would break the account page.
      directives: { upgradeInsecureRequests: fastify.config.cookieSecure ? [] : null },
    },
  })
  fastify.addHook('onSend', async (_request, reply) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
  })
}

export default fp(securityHeaders, { name: 'security-headers' })
