// Runs the session cleanup on CLEANUP_CRON, each run in its own worker thread
// (src/auth/cleanup.ts), so the deletes never stall the server's event loop.
// `protect` skips a run while the previous one is still going; on close the job
// stops and a running worker is stopped before the database closes.
import { Cron } from 'croner'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type CleanupRun, startCleanupWorker } from '../src/auth/cleanup.js'

async function scheduler(fastify: FastifyInstance): Promise<void> {
  let running: CleanupRun | undefined
  const job = new Cron(fastify.config.cleanupCron, { protect: true, paused: true }, async () => {
    // databaseFile is always a path (loadConfig resolves DATABASE_URL, so even
    // ':memory:' names a file), which the worker opens beside the server.
    const run = startCleanupWorker(fastify.config.databaseFile, Date.now())
    running = run
    try {
      const { deleted, stopped } = await run.done
      fastify.log.info({ deleted }, stopped ? 'session cleanup stopped' : 'session cleanup done')
    } catch (error) {
      fastify.log.error({ err: error }, 'session cleanup failed')
    } finally {
      running = undefined
    }
  })
  fastify.addHook('onReady', async () => {
    job.resume()
  })
  fastify.addHook('preClose', async () => {
    job.stop()
    await running?.stop()
  })
}

export default fp(scheduler, { name: 'scheduler', dependencies: ['store'] })
