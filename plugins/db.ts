// The database: opens the configured one (SQLite file or PostgreSQL), refuses
// to serve one that is damaged, empty where a database was expected, not
// writable, or kept under other secrets than the configured ones; applies
// pending migrations; and closes it after the server has drained. Decorates
// `db` (the Kysely instance every repository takes), `database` (its handle:
// readiness, exclusive jobs), `databaseHealth` (faults requests run into, for
// `/ready`) and the purpose-bound `keys`.
import { existsSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type Kysely, sql } from 'kysely'
import { deriveKeys, type Keys } from '../src/auth/keys.js'
import type { Clock } from '../src/clock.js'
import { type Config, processUser, SECRETS_FILE, saveGeneratedSecrets } from '../src/config.js'
import type { Database } from '../src/db/database.js'
import { type DatabaseHandle, DatabaseInUseError, openDatabase } from '../src/db/dialect.js'
import { DatabaseHealth, DatabaseRefusedError, isDamaged, isStorageFull, quickCheckFindings } from '../src/db/errors.js'
import { migrateToLatest } from '../src/db/migrator.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    clock: Clock
    db: Kysely<Database>
    database: DatabaseHandle
    databaseHealth: DatabaseHealth
    keys: Keys
  }
}

/** The variable that names a SQLite file: DATA_DIR for the default one, else DATABASE_URL. */
function fileVariable(config: Config, file: string): string {
  return file === path.join(config.dataDir, 'latchkey.db') ? 'DATA_DIR' : 'DATABASE_URL'
}

/** The files latchkey makes are 0600 whatever the directory's mode; a directory open to others still lists them. */
function warnIfDataDirIsOpen(fastify: FastifyInstance): void {
  const { dataDir } = fastify.config
  let mode: number
  try {
    mode = statSync(dataDir).mode & 0o777
  } catch {
    return
  }
  if ((mode & 0o077) === 0) return
  fastify.log.warn(
    { dataDir, mode: mode.toString(8).padStart(4, '0') },
    'DATA_DIR is open to other users: run chmod 700 on it (the files latchkey makes there are private, 0600, regardless)',
  )
}

/**
 * An empty file where the secrets file shows a database was made is a
 * damaged or truncated database: taking it for a new one would lose every
 * account without a word. (latchkey itself never leaves an empty database
 * file, src/db/dialect.ts; a missing file is a new database at a new path.)
 */
function refuseEmptyDatabaseFile(config: Config, file: string): void {
  const secrets = config.secretsFile
  if (!secrets?.existed) return
  let size: number
  try {
    size = statSync(file).size
  } catch {
    return
  }
  if (size > 0) return
  throw new DatabaseRefusedError(
    fileVariable(config, file),
    `${file} is empty (0 bytes), but ${secrets.path} shows that a database was made here: restore ${path.basename(file)} from a backup (to start anew instead, move both files away)`,
  )
}

/** Start-up errors of a SQLite file, said in one line that names the file, the variable and the user. */
function explainStartupError(config: Config, error: unknown): unknown {
  if (config.database.kind !== 'sqlite') return error
  if (error instanceof DatabaseRefusedError || error instanceof DatabaseInUseError) return error
  const { file } = config.database
  const variable = fileVariable(config, file)
  // The migrator wraps the database's own error (src/db/migrator.ts).
  const wrapped = (error as { cause?: unknown }).cause
  const root = (error as { code?: unknown }).code === undefined && wrapped instanceof Error ? wrapped : error
  const code = String((root as { code?: unknown }).code ?? '')
  const message = String((root as Error).message ?? root)
  const what = message.startsWith(code) ? message : `${code}: ${message}`
  if (isStorageFull(root)) {
    return new DatabaseRefusedError(
      variable,
      `the disk that holds ${file} is full (${what}); free space and start again`,
    )
  }
  if (isDamaged(root)) {
    return new DatabaseRefusedError(
      variable,
      `${file} is damaged or not a database (${what}); restore it from a backup`,
    )
  }
  if (/^SQLITE_(READONLY|CANTOPEN|PERM|AUTH)/.test(code) || ['EACCES', 'EPERM', 'EROFS'].includes(code)) {
    return new DatabaseRefusedError(
      variable,
      `cannot write ${file} (${what}) as user ${processUser()}: that user needs write access to the file and to ${path.dirname(file)}, where latchkey keeps its -wal, -shm and .lock files`,
    )
  }
  return error
}

/** Tables whose rows depend on no secret: counters that new secrets would only reset. */
const TABLES_WITHOUT_SECRETS = new Set(['rate_limits'])

/** The tables that hold at least one row (one root-page read each). */
async function tablesWithRows(db: Kysely<Database>): Promise<string[]> {
  const found: string[] = []
  for (const table of await db.introspection.getTables()) {
    if (TABLES_WITHOUT_SECRETS.has(table.name)) continue
    const { rows } = await sql`select 1 from ${sql.table(table.name)} limit 1`.execute(db)
    if (rows.length > 0) found.push(table.name)
  }
  return found
}

/**
 * Whether the secrets this configuration generated are by now in the file (an
 * earlier start with the very same Config object wrote them): then the data in
 * the database was made with them.
 */
function savedSince(config: Config, secrets: NonNullable<Config['secretsFile']>): boolean {
  let saved: Record<string, unknown>
  try {
    saved = JSON.parse(readFileSync(secrets.path, 'utf8'))
  } catch {
    return false
  }
  const values: Record<string, string> = {
    JWT_SECRET: config.jwtSecret,
    COOKIE_SECRET: config.cookieSecret,
    DATA_ENCRYPTION_KEY: config.dataEncryptionKey,
  }
  return secrets.generated.every((name) => saved[name] === values[name])
}

/**
 * Secrets generated on this start suit a new database only: any data in it
 * was made with the secrets the file no longer holds (tokens signed, signing
 * keys and secret messages sealed, refresh tokens and device cookies hashed).
 * And secret messages sealed under another data key than the configured one
 * could never be read (src/data/crypto.ts knows one key): a mixed-up secrets
 * file, or the wrong DATA_ENCRYPTION_KEY.
 */
async function checkSecretsFitData(config: Config, db: Kysely<Database>, keys: Keys): Promise<void> {
  const secrets = config.secretsFile
  if (secrets && secrets.generated.length > 0 && !savedSince(config, secrets)) {
    const tables = await tablesWithRows(db)
    if (tables.length > 0) {
      const missing = secrets.generated.join(', ')
      const what = secrets.existed ? `${secrets.path} lacks ${missing}` : `${secrets.path} is missing`
      throw new DatabaseRefusedError(
        'DATA_DIR',
        `${what}, but the database holds data made with it (${tables.join(', ')}): restore ${SECRETS_FILE} from a backup of ${config.dataDir} (or set ${missing} to the old values); new secrets would make tokens, keys and secret messages unreadable`,
      )
    }
  }
  const sealed = await db.selectFrom('secrets').select('key_id').limit(1).executeTakeFirst()
  if (sealed && sealed.key_id !== keys.dataEncryptionKeyId) {
    throw new DatabaseRefusedError(
      'DATA_ENCRYPTION_KEY',
      `the database holds secret messages sealed under another data key (key id ${sealed.key_id}; the configured key's id is ${keys.dataEncryptionKeyId}): set the DATA_ENCRYPTION_KEY they were sealed with, or restore ${SECRETS_FILE} from a backup`,
    )
  }
}

async function db(fastify: FastifyInstance): Promise<void> {
  const { config } = fastify
  const keys = deriveKeys(config)
  const file = config.database.kind === 'sqlite' ? config.database.file : undefined
  warnIfDataDirIsOpen(fastify)
  if (file) refuseEmptyDatabaseFile(config, file)
  const created = file !== undefined && !existsSync(file)

  let handle: DatabaseHandle
  try {
    handle = openDatabase(config.database, {
      serverLock: true,
      onPoolError: (error) => fastify.log.warn({ err: error }, 'idle database connection failed'),
    })
  } catch (error) {
    throw explainStartupError(config, error)
  }
  let applied: string[]
  try {
    if (file) {
      // Before anything is served or migrated: about half a second for the bench's 600 MB, 1,000,000-task file.
      const began = performance.now()
      const findings = await quickCheckFindings(handle.db)
      if (findings) {
        throw new DatabaseRefusedError(
          fileVariable(config, file),
          `${file} is damaged (quick_check: ${findings}); restore it from a backup`,
        )
      }
      fastify.log.debug({ database: file, ms: Math.round(performance.now() - began) }, 'database quick check passed')
    }
    applied = await migrateToLatest(handle.db)
    await checkSecretsFitData(config, handle.db, keys)
    if (config.secretsFile?.pending) saveGeneratedSecrets(config.secretsFile)
  } catch (error) {
    await handle.close()
    throw explainStartupError(config, error)
  }
  fastify.addHook('onClose', async () => handle.close())
  if (applied.length > 0) fastify.log.info({ migrations: applied }, 'migrations applied')
  const generated = config.secretsFile && config.secretsFile.generated.length > 0 ? config.secretsFile : undefined
  if (created || generated) {
    // Where everything lives, never what the secrets are.
    fastify.log.info(
      { dataDir: config.dataDir, database: file ?? 'PostgreSQL', secretsFile: generated?.path },
      generated
        ? 'first start: generated the secrets file; back it up together with the database (neither is usable without the other)'
        : 'first start: created the database',
    )
  }
  fastify.decorate('database', handle)
  fastify.decorate('db', handle.db)
  fastify.decorate('keys', keys)
  fastify.decorate(
    'databaseHealth',
    new DatabaseHealth({
      db: handle.db,
      kind: handle.kind,
      ping: () => handle.ping(),
      clock: fastify.clock,
      log: fastify.log,
      name: file ?? 'PostgreSQL',
    }),
  )
}

export default fp(db, { name: 'db' })
