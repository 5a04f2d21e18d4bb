// The only place that listens. On SIGTERM/SIGINT (close-with-grace) it closes
// the app: requests already sent are answered (in-flight ones finish, new ones
// get 503 SHUTTING_DOWN: plugins/errors.ts), the database closes (onClose
// hooks), a last `stopped` line is logged and written out, and the process
// exits 0. An uncaught error closes the same way, and exits 1.
//
// Log lines go to stdout through pino's asynchronous destination, in batches of
// at least 4 KiB or every quarter of a second, whichever comes first, so a
// busy server makes one write for about twenty access lines rather than one
// per line (pino's default destination is asynchronous too, but writes each
// line on its own). Writes never block the event loop: a stdout whose reader
// stalls (a full pipe) makes lines wait in memory, not requests. A shutdown
// writes every line out before the process exits, and pino writes out what is
// queued on any other process.exit. A process killed outright (SIGKILL, the
// kernel's OOM killer, a fatal V8 error) loses what was queued: at most the
// last 250 ms of lines, and never more than about 4 KiB beyond the batch in
// flight.
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { buildApp } from './app.js'
import type { Config } from './config.js'

/** In-flight requests get this long to finish before their connections are cut. */
const DRAIN_TIMEOUT_MS = 30_000
/** Then the rest of the shutdown (closing the database) gets this long, or the process exits 1. */
const CLOSE_TIMEOUT_MS = 10_000
/** Log lines are written in batches of this many bytes, or after this long. */
const LOG_BATCH_BYTES = 4096
const LOG_BATCH_MS = 250
/** A shutdown waits at most this long for the last lines (a stdout that is gone, EPIPE, never drains). */
const LOG_FLUSH_TIMEOUT_MS = 2000

/** Resolves once every line queued on `stream` is written (an fsync error, on a pipe, does not matter). */
function flushed(stream: ReturnType<typeof pino.destination>): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, LOG_FLUSH_TIMEOUT_MS).unref()
    stream.flush(() => resolve())
  })
}

export async function startServer(config: Config): Promise<FastifyInstance> {
  const logStream =
    config.logLevel === 'silent'
      ? undefined
      : pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_BATCH_MS })
  const app = await buildApp(config, { logStream })
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
      if (logStream) await flushed(logStream)
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
