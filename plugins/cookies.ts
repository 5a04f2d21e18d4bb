// Signed cookies (COOKIE_SECRET). The names, paths and attributes of the auth
// cookies are set in one place: plugins/auth.ts.
import cookie from '@fastify/cookie'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

async function cookies(fastify: FastifyInstance): Promise<void> {
  await fastify.register(cookie, { secret: fastify.config.cookieSecret, hook: 'onRequest' })
}

export default fp(cookies, { name: 'cookies' })
