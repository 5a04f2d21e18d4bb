// Opens the configured database: the embedded SQLite file (better-sqlite3, the
// zero-setup default) or PostgreSQL (a `pg` pool) for many instances. Both give
// the same Kysely<Database>: timestamps come back as numbers, unique violations
// are recognised alike (isUniqueViolation), and repositories write `.forUpdate()`
// where PostgreSQL must lock rows. Everything dialect-specific lives in src/db.
import { chmodSync, closeSync, existsSync, linkSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import {
  CompiledQuery,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type DatabaseMetadataOptions,
  Kysely,
  PostgresDialect,
  type SchemaMetadata,
  sql,
  type TableMetadata,
} from 'kysely'
import pg from 'pg'
import type { Database } from './database.js'
import { registerReadRunner } from './prepared.js'
import { ImmediateSqliteDialect, SqliteRowLockPlugin } from './sqlite-driver.js'

export type DatabaseConfig =
  | { kind: 'sqlite'; file: string; busyTimeoutMs: number }
  | { kind: 'postgres'; url: string; poolMax: number }

export interface DatabaseHandle {
  readonly db: Kysely<Database>
  readonly kind: DatabaseConfig['kind']
  /** Whether the database answers a query now (for `/ready`). */
  ping(): Promise<boolean>
  /**
   * Runs `fn` only if no other process holds the lock `name` (PostgreSQL: a
   * session advisory lock; SQLite: one server per file, so always), else
   * returns undefined. For work that one instance of many must do alone.
   */
  exclusively<T>(name: string, fn: () => Promise<T>): Promise<T | undefined>
  close(): Promise<void>
}

/** The PostgreSQL pool behind a handle, for rate-limiter-flexible's table store; undefined on SQLite. */
export const postgresPools = new WeakMap<DatabaseHandle, pg.Pool>()

export interface OpenOptions {
  /** Called with errors of idle pooled connections (a restarted PostgreSQL), which would otherwise crash the process. */
  onPoolError?: (error: Error) => void
  /**
   * SQLite: hold the file's server lock for as long as the handle is open, and
   * refuse to open if another server holds it. Two servers on one file would
   * each count limits and run cleanups of their own. (The CLI's one-shot
   * commands and the cleanup worker open the file beside a running server.)
   */
  serverLock?: boolean
}

/** Another server process already serves this SQLite file. */
export class DatabaseInUseError extends Error {
  constructor(file: string) {
    super(`another latchkey server is already using ${file} (its lock file ${file}.lock is held); stop it first`)
    this.name = 'DatabaseInUseError'
  }
}

export function openDatabase(config: DatabaseConfig, options: OpenOptions = {}): DatabaseHandle {
  return config.kind === 'sqlite' ? openSqlite(config, options) : openPostgres(config, options)
}

/**
 * An exclusive lock held until released or the process ends (even by kill -9):
 * an open write transaction on a small SQLite file beside the database, which
 * takes an OS file lock that the kernel drops with the process.
 */
function takeServerLock(file: string): () => void {
  const lockFile = `${file}.lock`
  makePrivateFile(lockFile)
  const lock = new SQLite(lockFile)
  try {
    lock.pragma('busy_timeout = 0')
    lock.pragma('locking_mode = EXCLUSIVE')
    lock.exec('BEGIN EXCLUSIVE')
  } catch (error) {
    lock.close()
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) throw new DatabaseInUseError(file)
    throw error
  }
  return () => lock.close()
}

/**
 * Makes the file readable by its owner only, whatever the umask or the
 * directory's mode; SQLite gives the -wal and -shm files the database file's
 * mode. An existing file is changed by path, never opened: closing any
 * descriptor of a file drops every POSIX lock this process holds on it,
 * SQLite's included.
 */
function makePrivateFile(file: string): void {
  if (existsSync(file)) {
    chmodSync(file, 0o600)
    return
  }
  closeSync(openSync(file, 'a', 0o600))
  chmodSync(file, 0o600)
}

/**
 * Creates a new database file whole: made and initialised under a temporary
 * name (WAL mode, which writes the header), then linked into place, which
 * fails if another process made the file meanwhile. So latchkey never leaves
 * an empty database file behind, even when killed while creating one: an
 * empty file where a database was expected is damage, and start-up says so.
 */
function createDatabaseFile(file: string): void {
  const temporary = `${file}.${process.pid}.new`
  rmSync(temporary, { force: true })
  try {
    makePrivateFile(temporary)
    const init = new SQLite(temporary)
    try {
      init.pragma('journal_mode = WAL')
    } finally {
      init.close()
    }
    try {
      linkSync(temporary, file)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EEXIST') return
      // A file system without hard links: a rename, which would replace a file made meanwhile.
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(code ?? '')) throw error
      if (!existsSync(file)) renameSync(temporary, file)
    }
  } finally {
    rmSync(temporary, { force: true })
  }
}

function openSqlite(config: Extract<DatabaseConfig, { kind: 'sqlite' }>, options: OpenOptions): DatabaseHandle {
  let releaseLock = () => {}
  let sqlite: SQLite.Database | undefined
  try {
    if (config.file !== ':memory:') {
      mkdirSync(path.dirname(config.file), { recursive: true, mode: 0o700 })
      if (options.serverLock) releaseLock = takeServerLock(config.file)
      if (existsSync(config.file)) makePrivateFile(config.file)
      else createDatabaseFile(config.file)
    }
    sqlite = new SQLite(config.file)
    // WAL lets readers run beside the writer; synchronous=FULL syncs each commit to
    // disk, so a write that answered 2xx survives a crash of the process or the machine.
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('synchronous = FULL')
    sqlite.pragma('foreign_keys = ON')
    // No waiting inside SQLite (it would sleep the event loop): the driver waits on timers.
    sqlite.pragma('busy_timeout = 0')
  } catch (error) {
    sqlite?.close()
    releaseLock()
    throw error
  }
  const dialect = new ImmediateSqliteDialect({ database: sqlite, busyTimeoutMs: config.busyTimeoutMs })
  const db = new Kysely<Database>({ dialect, plugins: [new SqliteRowLockPlugin()] })
  const driver = dialect.driver
  if (driver) {
    registerReadRunner(db, async <R>(text: string, parameters: readonly unknown[]) => {
      const row = driver.readFirstNow<R>(text, parameters)
      if (row !== undefined) return row ?? undefined
      return (await db.executeQuery<R>({ ...CompiledQuery.raw(text, [...parameters]) })).rows[0]
    })
  }
  let closed = false
  return {
    db,
    kind: 'sqlite',
    async ping() {
      if (closed) return false
      try {
        // Reads the file (its schema), where `select 1` would not touch it.
        const row = await sql<{ ok: number }>`select count(*) >= 0 as ok from sqlite_schema`.execute(db)
        return row.rows[0]?.ok === 1
      } catch {
        return false
      }
    },
    exclusively: (_name, fn) => fn(),
    async close() {
      if (closed) return
      closed = true
      await db.destroy()
      releaseLock()
    },
  }
}

/**
 * Kysely's PostgreSQL introspector reads every schema of the database, calling
 * pg_get_serial_sequence on each column: a schema that another client drops
 * meanwhile (another app's deploy, parallel test files) made the migrator's
 * "do my tables exist" check fail, and the server with it. This one reads the
 * current schema only, which is all the migrator asks about.
 */
class CurrentSchemaIntrospector implements DatabaseIntrospector {
  // biome-ignore lint/suspicious/noExplicitAny: introspection runs on any database, not only latchkey's tables
  constructor(private readonly db: Kysely<any>) {}

  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string }>`select current_schema() as name`.execute(this.db)
    return rows
  }

  async getTables(options?: DatabaseMetadataOptions): Promise<TableMetadata[]> {
    const { rows } = await sql<{
      table: string
      schema: string
      view: boolean
      column: string
      type: string
      nullable: boolean
      has_default: boolean
    }>`
      select c.relname as table, n.nspname as schema, c.relkind = 'v' as view, a.attname as column,
             format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable, a.atthasdef as has_default
      from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where n.nspname = current_schema() and c.relkind in ('r', 'v', 'p')
      order by c.relname, a.attnum`.execute(this.db)
    const tables = new Map<string, TableMetadata & { columns: TableMetadata['columns'][number][] }>()
    for (const row of rows) {
      if (!options?.withInternalKyselyTables && row.table.startsWith('kysely_')) continue
      let table = tables.get(row.table)
      if (!table) {
        table = { name: row.table, schema: row.schema, isView: row.view, columns: [] }
        tables.set(row.table, table)
      }
      table.columns.push({
        name: row.column,
        dataType: row.type,
        isNullable: row.nullable,
        hasDefaultValue: row.has_default,
        isAutoIncrementing: false,
      })
    }
    return [...tables.values()]
  }

  async getMetadata(options?: DatabaseMetadataOptions): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) }
  }
}

class CurrentSchemaPostgresDialect extends PostgresDialect {
  // biome-ignore lint/suspicious/noExplicitAny: see CurrentSchemaIntrospector
  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new CurrentSchemaIntrospector(db)
  }
}

/** int8 (bigint) columns hold epoch milliseconds and counts: numbers, exact below 2^53. */
const INT8_OID = 20
const parseInt8 = (value: string): number => Number(value)

function openPostgres(config: Extract<DatabaseConfig, { kind: 'postgres' }>, options: OpenOptions): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolMax,
    // A database that does not answer fails requests (503) rather than queueing them for ever.
    connectionTimeoutMillis: 5_000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID && format !== 'binary'
          ? parseInt8
          : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
    },
  })
  pool.on('error', (error) => options.onPoolError?.(error))
  const db = new Kysely<Database>({ dialect: new CurrentSchemaPostgresDialect({ pool }) })
  registerReadRunner(db, async <R>(text: string, parameters: readonly unknown[], name: string) => {
    const result = await pool.query({ name, text, values: [...parameters] })
    return result.rows[0] as R | undefined
  })
  let closed = false
  const handle: DatabaseHandle = {
    db,
    kind: 'postgres',
    async ping() {
      if (closed) return false
      try {
        const row = await sql<{ ok: number }>`select 1 as ok`.execute(db)
        return row.rows[0]?.ok === 1
      } catch {
        return false
      }
    },
    async exclusively(name, fn) {
      // A session-level lock on a connection of its own, outside the pool (so fn
      // can use every pooled connection, even with DATABASE_POOL_MAX=1), keyed by
      // the schema too: two deployments in one database never block each other.
      const client = new pg.Client({ connectionString: config.url })
      client.on('error', (error) => options.onPoolError?.(error))
      await client.connect()
      try {
        const key = `latchkey:${name}:`
        const { rows } = await client.query<{ locked: boolean }>(
          'select pg_try_advisory_lock(hashtext($1 || current_schema())) as locked',
          [key],
        )
        if (!rows[0]?.locked) return undefined
        return await fn()
      } finally {
        // Ending the session releases its advisory locks.
        await client.end()
      }
    },
    async close() {
      if (closed) return
      closed = true
      await db.destroy()
    },
  }
  postgresPools.set(handle, pool)
  return handle
}
