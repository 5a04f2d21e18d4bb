// Helmet's defaults on every response, errors included, and `Cache-Control:
// no-store` unless a route chose otherwise: API answers carry tokens or user data.
//
// The headers come from `helmet` itself, run once at start-up against a response
// that records them: they depend on the configuration only (no CSP nonces here),
// so rebuilding Helmet's middleware on every request, as @fastify/helmet does,
// cost about a fifth of the server's CPU per request for the same bytes. The
// same headers go on the answers written outside this plugin's hooks: router
// errors and Node's HTTP parser errors (plugins/errors.ts).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import type { Config } from '../src/config.js'

export interface SecurityHeaders {
  /** Header name (lower case) to value. */
  readonly set: Readonly<Record<string, string>>
  /** Headers Helmet removes (X-Powered-By). */
  readonly remove: readonly string[]
}

/** The headers Helmet's middleware sets and removes for `options`. */
function helmetHeaders(options: Readonly<HelmetOptions>): SecurityHeaders {
  const set: Record<string, string> = {}
  const remove: string[] = []
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      set[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
    },
    removeHeader(name: string) {
      remove.push(name.toLowerCase())
    },
  }
  let finished = false
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error
    finished = true
  })
  // Helmet's middleware is synchronous; if a future version were not, fail at start.
  if (!finished) throw new Error('helmet did not finish synchronously')
  return Object.freeze({ set: Object.freeze(set), remove: Object.freeze(remove) })
}

const computed = new WeakMap<Config, SecurityHeaders>()

/** The security headers of every response under `config`: Helmet's, computed once per configuration. */
export function securityHeadersFor(config: Config): SecurityHeaders {
  let headers = computed.get(config)
  if (!headers) {
    headers = helmetHeaders({
      contentSecurityPolicy: {
        // No `upgrade-insecure-requests`: every page here loads only same-origin,
        // relative URLs, so over https it changes nothing, while over plain http
        // (http://<host>:3000/ on a VM) it turned the pages' own assets into https
        // requests that fail, and the account page hung. The page explains itself
        // when its Secure cookies cannot work over plain http (public/account.js).
        directives: { upgradeInsecureRequests: null },
      },
    })
    computed.set(config, headers)
  }
  return headers
}

async function securityHeaders(fastify: FastifyInstance): Promise<void> {
  const { set, remove } = securityHeadersFor(fastify.config)
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
