// The database: opens the SQLite file, applies pending migrations, and closes it
// after the server has drained. Decorates `store` and the purpose-bound `keys`.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { deriveKeys, type Keys } from '../src/auth/keys.js'
import type { Config } from '../src/config.js'
import { openStore, type Store } from '../src/db/connection.js'
import { migrateToLatest } from '../src/db/migrator.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    store: Store
    keys: Keys
  }
}

async function store(fastify: FastifyInstance): Promise<void> {
  const handle = openStore(fastify.config.databaseFile)
  fastify.addHook('onClose', async () => handle.close())
  const applied = await migrateToLatest(handle.db)
  if (applied.length > 0) fastify.log.info({ migrations: applied }, 'migrations applied')
  fastify.decorate('store', handle)
  fastify.decorate('keys', deriveKeys(fastify.config))
}

export default fp(store, { name: 'store' })
