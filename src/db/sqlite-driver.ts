// A Kysely driver for the embedded SQLite file (better-sqlite3), in place of
// Kysely's own SqliteDriver, for four reasons that each showed up under load:
// - Write transactions begin IMMEDIATE: a deferred one that reads first and then
//   writes gets SQLITE_BUSY at once when another connection (the cleanup worker,
//   `latchkey cleanup`) holds the write lock, which answered 500s.
// - Waiting for the write lock happens on the event loop's timers, not inside
//   SQLite's busy handler (busy_timeout sleeps the whole thread): while one
//   transaction waits, reads and /health go on. A write that cannot get the lock
//   within `busyTimeoutMs` fails with DatabaseBusyError (503 DATABASE_BUSY).
// - Statements outside a transaction never land inside another request's open
//   transaction: the one connection is held from BEGIN to COMMIT, and a lone
//   statement waits for it (transactions here are short and never wait on I/O
//   other than this file).
// - Prepared statements are cached by SQL text: preparing anew on every query
//   (Kysely's driver) cost a third of `GET /users/me`.
import { setTimeout as sleep } from 'node:timers/promises'
import type SQLite from 'better-sqlite3'
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type KyselyPlugin,
  OperationNodeTransformer,
  type PluginTransformQueryArgs,
  type QueryResult,
  type RootOperationNode,
  type SelectQueryNode,
  SqliteAdapter,
  SqliteDialect,
  type SqliteDialectConfig,
} from 'kysely'
import { LruMap } from 'toad-cache'

/** The write lock stayed taken by another connection for longer than the configured wait. */
export class DatabaseBusyError extends Error {
  constructor(waitedMs: number) {
    super(`the database stayed locked by another connection for ${waitedMs} ms`)
    this.name = 'DatabaseBusyError'
  }
}

/** Page queries carry their page size in the SQL: up to 100 sizes per page shape (src/data/cursor.ts). */
const STATEMENT_CACHE_LIMIT = 2000
/** First and longest pause between tries for the write lock. */
const RETRY_FIRST_MS = 1
const RETRY_MAX_MS = 25

const isBusy = (error: unknown): boolean => {
  const code = (error as { code?: unknown }).code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED'
}

/** A FIFO lock on the one connection: held by a transaction from BEGIN to COMMIT, or by one lone statement. */
class ConnectionLock {
  #tail: Promise<void> = Promise.resolve()
  /** Holders and waiters. */
  #count = 0

  /** Nobody holds or waits for the connection: a synchronous statement now cannot land inside a transaction. */
  get idle(): boolean {
    return this.#count === 0
  }

  async acquire(): Promise<() => void> {
    this.#count++
    let resolveHeld!: () => void
    const held = new Promise<void>((resolve) => {
      resolveHeld = resolve
    })
    const previous = this.#tail
    this.#tail = previous.then(() => held)
    await previous
    let released = false
    return () => {
      if (released) return
      released = true
      this.#count--
      resolveHeld()
    }
  }
}

class SqliteConnection implements DatabaseConnection {
  #release: (() => void) | undefined

  constructor(
    private readonly driver: ImmediateSqliteDriver,
    private readonly sqlite: SQLite.Database,
  ) {}

  get inTransaction(): boolean {
    return this.#release !== undefined
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    if (this.#release) return this.run<R>(compiled)
    // A lone statement: it waits for any open transaction of this connection, and
    // retries while another connection writes, letting other requests run between tries.
    return this.driver.whileBusy(async () => {
      const release = await this.driver.lock.acquire()
      try {
        return this.run<R>(compiled)
      } finally {
        release()
      }
    })
  }

  run<R>(compiled: CompiledQuery): QueryResult<R> {
    const statement = this.driver.statement(compiled.sql)
    if (statement.reader) return { rows: statement.all(compiled.parameters as unknown[]) as R[] }
    const { changes } = statement.run(compiled.parameters as unknown[])
    return { numAffectedRows: BigInt(changes), rows: [] }
  }

  async begin(): Promise<void> {
    this.#release = await this.driver.whileBusy(async () => {
      const release = await this.driver.lock.acquire()
      try {
        this.sqlite.exec('BEGIN IMMEDIATE')
        return release
      } catch (error) {
        release()
        throw error
      }
    })
  }

  end(command: 'COMMIT' | 'ROLLBACK'): void {
    const release = this.#release
    try {
      // After a failed statement SQLite may already have rolled back.
      if (command === 'COMMIT' || this.sqlite.inTransaction) this.sqlite.exec(command)
    } finally {
      if (!this.sqlite.inTransaction) {
        this.#release = undefined
        release?.()
      }
    }
  }

  // biome-ignore lint/correctness/useYield: streaming is not used; Kysely requires the method.
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported on SQLite here')
  }
}

export interface ImmediateSqliteConfig {
  database: SQLite.Database
  /** How long a write waits for another connection's write lock. */
  busyTimeoutMs: number
}

export class ImmediateSqliteDriver implements Driver {
  readonly lock = new ConnectionLock()
  readonly busyTimeoutMs: number
  readonly #sqlite: SQLite.Database
  readonly #statements = new LruMap<SQLite.Statement>(STATEMENT_CACHE_LIMIT)
  /** readFirstNow's statements: rows as arrays (better-sqlite3 interns every column name of every row object it builds). */
  readonly #rawStatements = new Map<string, { statement: SQLite.Statement; columns: readonly string[] }>()

  constructor(config: ImmediateSqliteConfig) {
    this.#sqlite = config.database
    this.busyTimeoutMs = config.busyTimeoutMs
  }

  statement(sql: string): SQLite.Statement {
    let statement = this.#statements.get(sql)
    if (!statement) {
      statement = this.#sqlite.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }

  /**
   * The first row of a read (null if none), run at once and synchronously when
   * the connection is idle (no transaction open or waiting); undefined
   * otherwise, or when SQLite is busy: then the caller takes the ordinary,
   * queued way. For the per-request session check: the row is read as an array
   * and made an object here, since better-sqlite3 interns every column name of
   * every row object it builds (with the queue's promises, 1.25x the previous
   * release's CPU per /users/me; 1.03-1.10x this way).
   */
  readFirstNow<R>(sql: string, parameters: readonly unknown[]): R | null | undefined {
    if (!this.lock.idle) return undefined
    try {
      let raw = this.#rawStatements.get(sql)
      if (!raw) {
        const statement = this.#sqlite.prepare(sql).raw(true)
        raw = { statement, columns: statement.columns().map((column) => column.name) }
        this.#rawStatements.set(sql, raw)
      }
      const values = raw.statement.get(parameters as unknown[]) as unknown[] | undefined
      if (!values) return null
      const row: Record<string, unknown> = {}
      for (let i = 0; i < raw.columns.length; i++) row[raw.columns[i] as string] = values[i]
      return row as R
    } catch (error) {
      if (isBusy(error)) return undefined
      throw error
    }
  }

  /**
   * Runs `attempt` again, after a growing pause on the event loop's timers, for
   * as long as another connection holds the lock it needs, up to `busyTimeoutMs`.
   */
  async whileBusy<T>(attempt: () => Promise<T>): Promise<T> {
    const began = Date.now()
    let pause = RETRY_FIRST_MS
    for (;;) {
      try {
        return await attempt()
      } catch (error) {
        if (!isBusy(error)) throw error
        if (Date.now() - began >= this.busyTimeoutMs) throw new DatabaseBusyError(Date.now() - began)
      }
      await sleep(pause)
      pause = Math.min(pause * 2, RETRY_MAX_MS)
    }
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    // A handle per use; the lock is taken per statement or per transaction.
    return new SqliteConnection(this, this.#sqlite)
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as SqliteConnection).begin()
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    ;(connection as SqliteConnection).end('COMMIT')
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    ;(connection as SqliteConnection).end('ROLLBACK')
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {
    // Take the lock so that no transaction is cut in half; closing checkpoints the WAL.
    const release = await this.lock.acquire()
    try {
      this.#sqlite.close()
    } finally {
      release()
    }
  }
}

/** SQLite runs DDL in transactions, so each migration is all or nothing. */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

/** Kysely's SQLite dialect with the driver above and transactional migrations. */
export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ImmediateSqliteConfig

  constructor(config: ImmediateSqliteConfig) {
    super({ database: config.database } satisfies SqliteDialectConfig)
    this.#config = config
  }

  /** The driver this dialect made (one per Kysely instance). */
  driver: ImmediateSqliteDriver | undefined

  override createDriver(): Driver {
    this.driver = new ImmediateSqliteDriver(this.#config)
    return this.driver
  }

  override createAdapter(): SqliteAdapter {
    return new TransactionalDdlSqliteAdapter()
  }
}

/**
 * SQLite has no row locks (and no `FOR UPDATE`): its IMMEDIATE transactions
 * already hold the one write lock. Repositories write `.forUpdate()` for
 * PostgreSQL; on SQLite this plugin drops it.
 */
class DropRowLocks extends OperationNodeTransformer {
  protected override transformSelectQuery(node: SelectQueryNode): SelectQueryNode {
    const transformed = super.transformSelectQuery(node)
    if (!transformed.endModifiers) return transformed
    const endModifiers = transformed.endModifiers.filter(
      (modifier) => modifier.modifier !== 'ForUpdate' && modifier.modifier !== 'ForShare',
    )
    return { ...transformed, endModifiers: endModifiers.length > 0 ? endModifiers : undefined }
  }
}

export class SqliteRowLockPlugin implements KyselyPlugin {
  readonly #transformer = new DropRowLocks()

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.#transformer.transformNode(args.node)
  }

  async transformResult<R>(args: { result: QueryResult<R> }): Promise<QueryResult<R>> {
    return args.result
  }
}
