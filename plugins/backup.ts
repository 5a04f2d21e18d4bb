// Scheduled backups of the SQLite database (BACKUP_CRON; off by default): at
// each tick a consistent online copy goes to BACKUP_DIR, named by its time,
// with its secrets file beside it, and only the newest BACKUP_KEEP are kept.
// The copy runs in steps that yield to the event loop between them
// (src/admin/backup.ts), so requests go on meanwhile. `protect` skips a tick
// while the previous copy is still running; on close the job stops and a copy
// under way is waited for, before the database closes.
import path from 'node:path'
import { Cron } from 'croner'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { backupSqlite, pruneBackups, scheduledBackupName } from '../src/admin/backup.js'

async function backup(fastify: FastifyInstance): Promise<void> {
  const { config, clock } = fastify
  const { cron, dir, keep } = config.backup
  if (cron === undefined || config.database.kind !== 'sqlite') return
  const source = config.database.file
  let running: Promise<void> | undefined

  async function runOnce(): Promise<void> {
    try {
      const file = path.join(dir, scheduledBackupName(clock.now()))
      const result = await backupSqlite(source, file, {
        JWT_SECRET: config.jwtSecret,
        COOKIE_SECRET: config.cookieSecret,
        DATA_ENCRYPTION_KEY: config.dataEncryptionKey,
      })
      const pruned = pruneBackups(dir, keep)
      fastify.log.info({ file: result.file, bytes: result.bytes, pruned: pruned.length }, 'backup done')
    } catch (error) {
      fastify.log.error({ err: error }, 'backup failed')
    }
  }

  const job = new Cron(cron, { protect: true, paused: true }, async () => {
    running = runOnce()
    await running
    running = undefined
  })
  fastify.addHook('onReady', async () => {
    job.resume()
  })
  fastify.addHook('preClose', async () => {
    job.stop()
    await running
  })
}

export default fp(backup, { name: 'backup', dependencies: ['db'] })
