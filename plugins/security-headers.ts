// Helmet's defaults on every response, errors included, and `Cache-Control:
// no-store` unless a route chose otherwise: API answers carry tokens or user data.
//
// The headers come from `helmet` itself, run once at start-up against a response
// that records them: they depend on the configuration only (no CSP nonces here),
// so rebuilding Helmet's middleware on every request, as @fastify/helmet does,
// cost about a fifth of the server's CPU per request for the same bytes.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

interface SecurityHeaders {
  /** Header name (lower case) to value. */
  set: Record<string, string>
  /** Headers Helmet removes (X-Powered-By). */
  remove: string[]
}

/** The headers Helmet's middleware sets and removes for `options`. */
function helmetHeaders(options: Readonly<HelmetOptions>): SecurityHeaders {
  const headers: SecurityHeaders = { set: {}, remove: [] }
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.set[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
    },
    removeHeader(name: string) {
      headers.remove.push(name.toLowerCase())
    },
  }
  let finished = false
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error
    finished = true
  })
  // Helmet's middleware is synchronous; if a future version were not, fail at start.
  if (!finished) throw new Error('helmet did not finish synchronously')
  return headers
}

async function securityHeaders(fastify: FastifyInstance): Promise<void> {
  const { set, remove } = helmetHeaders({
    contentSecurityPolicy: {
      // With COOKIE_SECURE=false the server is meant to be reached over plain
      // http (local development); upgrading the page's own assets to https there
      // would break the account page.
      directives: { upgradeInsecureRequests: fastify.config.cookieSecure ? [] : null },
    },
  })
  fastify.addHook('onRequest', (_request, reply, done) => {
    reply.headers(set)
    for (const name of remove) reply.removeHeader(name)
    done()
  })
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
    done(null, payload)
  })
}

export default fp(securityHeaders, { name: 'security-headers' })
