// Runs the session cleanup on CLEANUP_CRON. On SQLite each run goes to its own
// worker thread (src/auth/cleanup.ts), so the deletes and their disk syncs never
// stall the server's event loop. On PostgreSQL the deletes are async round trips
// and run here, on whichever instance takes the advisory lock first: one
// instance at a time, not N. `protect` skips a run while the previous one is
// still going; on close the job stops, and a running cleanup is stopped, before
// the database closes.
import { Cron } from 'croner'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type CleanupResult, cleanupSessions, startCleanupWorker } from '../src/auth/cleanup.js'

async function scheduler(fastify: FastifyInstance): Promise<void> {
  const { config, database, clock } = fastify
  let stop: (() => Promise<void>) | undefined

  async function runOnce(): Promise<CleanupResult | undefined> {
    const at = clock.now()
    if (config.database.kind === 'sqlite') {
      const run = startCleanupWorker(config.database, at)
      stop = run.stop
      return run.done
    }
    let stopping = false
    stop = async () => {
      stopping = true
    }
    return database.exclusively('cleanup', async () => {
      const deleted = await cleanupSessions(database.db, at, undefined, () => stopping)
      return { deleted, stopped: stopping }
    })
  }

  const job = new Cron(config.cleanupCron, { protect: true, paused: true }, async () => {
    try {
      const result = await runOnce()
      if (result === undefined) fastify.log.info('session cleanup is running on another instance')
      else
        fastify.log.info(
          { deleted: result.deleted },
          result.stopped ? 'session cleanup stopped' : 'session cleanup done',
        )
    } catch (error) {
      fastify.log.error({ err: error }, 'session cleanup failed')
    } finally {
      stop = undefined
    }
  })
  fastify.addHook('onReady', async () => {
    job.resume()
  })
  fastify.addHook('preClose', async () => {
    job.stop()
    await stop?.()
  })
}

export default fp(scheduler, { name: 'scheduler', dependencies: ['db'] })
