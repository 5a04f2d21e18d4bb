// Runs the session cleanup on CLEANUP_CRON. `protect` skips a run while the
// previous one is still going; the job stops when the server closes.
import { Cron } from 'croner'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { cleanupSessions } from '../src/auth/cleanup.js'

async function scheduler(fastify: FastifyInstance): Promise<void> {
  const job = new Cron(fastify.config.cleanupCron, { protect: true, paused: true }, async () => {
    try {
      const deleted = await cleanupSessions(fastify.store, Date.now())
      fastify.log.info({ deleted }, 'session cleanup done')
    } catch (error) {
      fastify.log.error({ err: error }, 'session cleanup failed')
    }
  })
  fastify.addHook('onReady', async () => {
    job.resume()
  })
  fastify.addHook('preClose', async () => {
    job.stop()
  })
}

export default fp(scheduler, { name: 'scheduler', dependencies: ['store'] })
