// The database: opens the configured one (SQLite file or PostgreSQL), applies
// pending migrations, and closes it after the server has drained. Decorates
// `db` (the Kysely instance every repository takes), `database` (its handle:
// readiness, exclusive jobs) and the purpose-bound `keys`.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { deriveKeys, type Keys } from '../src/auth/keys.js'
import type { Clock } from '../src/clock.js'
import type { Config } from '../src/config.js'
import type { Database } from '../src/db/database.js'
import { type DatabaseHandle, openDatabase } from '../src/db/dialect.js'
import { migrateToLatest } from '../src/db/migrator.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    clock: Clock
    db: Kysely<Database>
    database: DatabaseHandle
    keys: Keys
  }
}

async function db(fastify: FastifyInstance): Promise<void> {
  const handle = openDatabase(fastify.config.database, {
    serverLock: true,
    onPoolError: (error) => fastify.log.warn({ err: error }, 'idle database connection failed'),
  })
  let applied: string[]
  try {
    applied = await migrateToLatest(handle.db)
  } catch (error) {
    await handle.close()
    throw error
  }
  fastify.addHook('onClose', async () => handle.close())
  if (applied.length > 0) fastify.log.info({ migrations: applied }, 'migrations applied')
  fastify.decorate('database', handle)
  fastify.decorate('db', handle.db)
  fastify.decorate('keys', deriveKeys(fastify.config))
}

export default fp(db, { name: 'db' })
