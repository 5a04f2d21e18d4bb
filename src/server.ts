// The only place that listens. On SIGTERM/SIGINT it stops accepting
// connections, lets in-flight requests finish, closes the database (onClose
// hooks) and exits 0.
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import type { Config } from './config.js'

/** In-flight requests get this long to finish before their sockets are cut. */
const DRAIN_TIMEOUT_MS = 30_000

export async function startServer(config: Config): Promise<FastifyInstance> {
  const app = await buildApp(config)
  let closing = false
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    // A keep-alive socket whose request finished during the drain would hold
    // close() open until its keep-alive timeout: close sockets as they go idle.
    const idleSweep = setInterval(() => app.server.closeIdleConnections(), 50)
    const deadline = setTimeout(() => {
      app.log.warn('drain timeout: closing remaining connections')
      app.server.closeAllConnections()
    }, DRAIN_TIMEOUT_MS)
    idleSweep.unref()
    deadline.unref()
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.once('SIGTERM', shutdown)
  process.once('SIGINT', shutdown)
  await app.listen({ port: config.port, host: config.host })
  return app
}
