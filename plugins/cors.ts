// CORS for the origins in CORS_ALLOWED_ORIGIN only, with credentials; any other
// origin gets no CORS headers at all.
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

async function corsPlugin(fastify: FastifyInstance): Promise<void> {
  const allowed = new Set(fastify.config.corsAllowedOrigins)
  await fastify.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Password-Confirmation'],
    exposedHeaders: ['Retry-After', 'WWW-Authenticate'],
    maxAge: 600,
  })
}

export default fp(corsPlugin, { name: 'cors' })
