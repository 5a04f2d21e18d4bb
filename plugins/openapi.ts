// The OpenAPI 3 document (built from every route's schema) at /openapi.json and
// Swagger UI at /docs. Registered before the routes so it sees them all.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ERROR_CODES } from '../src/errors.js'
import { version } from '../src/version.js'

const errorTable = Object.entries(ERROR_CODES)
  .map(([code, meaning]) => `| \`${code}\` | ${meaning} |`)
  .join('\n')

const description = `Self-hosted authentication server with a small per-user data API.

Authenticate with the access token, either as \`Authorization: Bearer <jwt>\` or the signed \`access_token\` cookie (the header wins).
Cookie-authenticated writes must come from the server's own origin or one listed in \`CORS_ALLOWED_ORIGIN\` (else \`403 CSRF_REJECTED\`).
Every error has the shape \`{ statusCode, code, error, message }\` (plus \`details\` for validation errors).

| code | meaning |
|---|---|
${errorTable}
`

async function openapi(fastify: FastifyInstance): Promise<void> {
  await fastify.register(swagger, {
    // A folder's root route is declared as '/'; document `/lists`, not `/lists/`.
    transform: ({ schema, url }) => ({ schema, url: url.length > 1 ? url.replace(/\/$/, '') : url }),
    openapi: {
      openapi: '3.0.3',
      info: { title: 'latchkey', version, description },
      tags: [
        { name: 'auth', description: 'Sign-up, login, tokens and sessions' },
        { name: 'users', description: 'The signed-in account' },
        { name: 'lists', description: 'Task lists' },
        { name: 'tasks', description: 'Tasks' },
        { name: 'secrets', description: 'Secret messages, encrypted at rest' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Access token' },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: 'access_token', description: 'Signed access-token cookie' },
          refreshCookie: {
            type: 'apiKey',
            in: 'cookie',
            name: 'refresh_token',
            description: 'Signed refresh-token cookie (HttpOnly, SameSite=Strict, Path=/auth)',
          },
          passwordConfirmationHeader: {
            type: 'apiKey',
            in: 'header',
            name: 'X-Password-Confirmation',
            description: 'Password-confirmation token of the current session',
          },
          passwordConfirmationCookie: {
            type: 'apiKey',
            in: 'cookie',
            name: 'password_confirmation_token',
            description: 'Signed password-confirmation cookie',
          },
        },
      },
    },
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
  fastify.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache')
    return fastify.swagger()
  })
}

export default fp(openapi, { name: 'openapi' })
