// The only place that listens. On SIGTERM/SIGINT (close-with-grace) it closes
// the app: requests already sent are answered (in-flight ones finish, new ones
// get 503 SHUTTING_DOWN: plugins/errors.ts), the database closes (onClose
// hooks), a last `stopped` line is logged and the process exits 0. An uncaught
// error closes the same way, and exits 1.
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import type { Config } from './config.js'

/** In-flight requests get this long to finish before their connections are cut. */
const DRAIN_TIMEOUT_MS = 30_000
/** Then the rest of the shutdown (closing the database) gets this long, or the process exits 1. */
const CLOSE_TIMEOUT_MS = 10_000

export async function startServer(config: Config): Promise<FastifyInstance> {
  const app = await buildApp(config)
  const shutdown = closeWithGrace(
    {
      delay: DRAIN_TIMEOUT_MS + CLOSE_TIMEOUT_MS,
      logger: { error: (error: unknown) => app.log.error({ err: error }, 'shutdown failed') },
      onTimeout: (delay) => app.log.error({ delay }, 'shutdown timed out: exiting'),
      onSecondSignal: (signal) => app.log.warn({ signal }, 'second signal: exiting now'),
      onSecondError: (error) => app.log.error({ err: error }, 'uncaught error while shutting down: exiting now'),
    },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'uncaught error: shutting down')
      else app.log.info({ signal }, 'shutting down')
      const drainDeadline = setTimeout(() => {
        app.log.warn('drain timeout: closing remaining connections')
        app.server.closeAllConnections()
      }, DRAIN_TIMEOUT_MS)
      drainDeadline.unref()
      await app.close()
      app.log.info('stopped')
    },
  )
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (error) {
    shutdown.uninstall()
    await app.close()
    throw error
  }
  return app
}
