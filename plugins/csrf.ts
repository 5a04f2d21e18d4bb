// CSRF defence for cookie-authenticated writes, by origin: the browser's
// `Origin` (or, without one, `Sec-Fetch-Site`) must be this server or a listed
// origin. Login, sign-up and refresh are always checked (login CSRF). A request
// carrying an `Authorization` header is not cookie-authenticated (the header
// wins) and a cross-site page cannot send one without a CORS preflight.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError } from '../src/errors.js'

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const ALWAYS_CHECKED = new Set(['/auth/login', '/auth/signup', '/auth/refresh', '/auth/sign-in-link/confirm'])
export const AUTH_COOKIES = ['access_token', 'refresh_token', 'password_confirmation_token'] as const

async function csrf(fastify: FastifyInstance): Promise<void> {
  const allowed = new Set(fastify.config.corsAllowedOrigins)

  const originAllowed = (request: FastifyRequest): boolean => {
    const origin = request.headers.origin
    if (origin === undefined) return request.headers['sec-fetch-site'] !== 'cross-site'
    if (allowed.has(origin)) return true
    return origin === `${request.protocol}://${request.host}`
  }

  fastify.addHook('onRequest', async (request) => {
    if (!UNSAFE_METHODS.has(request.method)) return
    const path = request.routeOptions.url ?? request.url.split('?')[0]
    const usesCookies =
      request.headers.authorization === undefined && AUTH_COOKIES.some((name) => request.cookies[name] !== undefined)
    if (!usesCookies && !ALWAYS_CHECKED.has(path ?? '')) return
    if (!originAllowed(request)) {
      throw new AppError(403, 'CSRF_REJECTED', 'Cross-site request refused: the origin is not allowed')
    }
  })
}

export default fp(csrf, { name: 'csrf', dependencies: ['cookies'] })
