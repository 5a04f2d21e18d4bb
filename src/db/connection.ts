// The embedded SQLite database. Queries are written with Kysely's builder (so the
// SQL stays portable), compiled, and run synchronously on one better-sqlite3
// connection through a cache of prepared statements: Kysely's own driver would
// prepare each query anew, several times slower on the per-request path.
// Transactions are synchronous too, so no other request's statement can land
// inside one. SQLite-specific settings live here and nowhere else.
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { type Compilable, type CompiledQuery, Kysely, SqliteDialect } from 'kysely'
import type { Database } from './schema.js'

type Query<Row> = Compilable<Row> | CompiledQuery<Row>

export interface Store {
  /** The query builder. Build with it; run with `all`, `get`, `values` and `run`. */
  readonly db: Kysely<Database>
  /** Rows of a query. `parameters` replace the compiled ones (for queries compiled once). */
  all<Row>(query: Query<Row>, parameters?: readonly unknown[]): Row[]
  get<Row>(query: Query<Row>, parameters?: readonly unknown[]): Row | undefined
  /**
   * The first row's values, in the order of the select list, without building
   * an object: for the per-request session check, where the object
   * better-sqlite3 builds costs more than reading the values (see `arrayRowsStatement`).
   */
  values(query: Query<unknown>, parameters?: readonly unknown[]): unknown[] | undefined
  /** Runs a write; returns the number of rows changed. */
  run(query: Query<unknown>, parameters?: readonly unknown[]): number
  /** Runs `fn` in one transaction; it commits when `fn` returns and rolls back if it throws. */
  transaction<T>(fn: () => T): T
  /** Answers whether the database responds (for `/ready`). */
  ping(): boolean
  close(): Promise<void>
}

// Page queries carry their page size in the SQL (src/data/cursor.ts): up to 100
// sizes for each page query's shape, about 1,200 statements in all, if clients
// used every size; they use one or two.
const STATEMENT_CACHE_LIMIT = 2000

/** A query's prepared statements, each made on first use. */
interface Prepared {
  /** For `get` and `run`. */
  statement?: SQLite.Statement
  /** For `all` and `values`: rows as arrays, with the names of their columns. */
  rows?: { statement: SQLite.Statement; columns: readonly string[] }
}

/**
 * `all` reads rows as arrays and builds the objects better-sqlite3 would have
 * built itself, in plain JS. better-sqlite3 builds each object through V8's C++
 * API and interns every column name again on every row: on a page of 21 tasks
 * that took longer than the query itself (140 against 84 us this way, measured on
 * the benchmark's database). For a single row, turning the array back into an
 * object in this generic way costs more than it saves (measured on `/users/me`),
 * so `get` keeps better-sqlite3's objects, and the per-request session check
 * reads the values themselves (`values`: 3 to 4% less CPU per `/users/me`).
 */
function arrayRowsStatement(sqlite: SQLite.Database, sql: string): NonNullable<Prepared['rows']> {
  const statement = sqlite.prepare(sql).raw(true)
  return { statement, columns: statement.columns().map((column) => column.name) }
}

/** A row read as an array, as an object keyed by column name (a repeated name keeps its last value, as before). */
function rowObject(columns: readonly string[], values: readonly unknown[]): Record<string, unknown> {
  const row: Record<string, unknown> = {}
  for (let i = 0; i < columns.length; i++) row[columns[i] as string] = values[i]
  return row
}

export function openStore(file: string): Store {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const sqlite = new SQLite(file)
  // WAL lets readers run beside the writer; synchronous=FULL syncs each commit to
  // disk, so a write that answered 2xx survives a crash of the process or the machine.
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = FULL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')

  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
  const statements = new Map<string, Prepared>()
  const ping = sqlite.prepare('select 1 as ok')
  let closed = false

  function cached<Row>(query: Query<Row>, parameters?: readonly unknown[]) {
    const compiled = 'compile' in query ? query.compile() : query
    let entry = statements.get(compiled.sql)
    if (!entry) {
      // Queries are built from fixed code paths, so the cache stays bounded; the
      // limit guards against a future builder call with a variable shape.
      if (statements.size >= STATEMENT_CACHE_LIMIT) statements.clear()
      entry = {}
      statements.set(compiled.sql, entry)
    }
    return { entry, sql: compiled.sql, parameters: parameters ?? compiled.parameters }
  }

  function statementOf<Row>(query: Query<Row>, parameters?: readonly unknown[]) {
    const { entry, sql, parameters: values } = cached(query, parameters)
    entry.statement ??= sqlite.prepare(sql)
    return { statement: entry.statement, parameters: values }
  }

  function arrayRowsOf<Row>(query: Query<Row>, parameters?: readonly unknown[]) {
    const { entry, sql, parameters: values } = cached(query, parameters)
    entry.rows ??= arrayRowsStatement(sqlite, sql)
    return { statement: entry.rows.statement, columns: entry.rows.columns, parameters: values }
  }

  return {
    db,
    all<Row>(query: Query<Row>, parameters?: readonly unknown[]): Row[] {
      const p = arrayRowsOf(query, parameters)
      const rows = p.statement.all(...p.parameters) as unknown[][]
      return rows.map((row) => rowObject(p.columns, row)) as Row[]
    },
    values(query: Query<unknown>, parameters?: readonly unknown[]): unknown[] | undefined {
      const p = arrayRowsOf(query, parameters)
      return p.statement.get(...p.parameters) as unknown[] | undefined
    },
    get<Row>(query: Query<Row>, parameters?: readonly unknown[]): Row | undefined {
      const p = statementOf(query, parameters)
      return p.statement.get(...p.parameters) as Row | undefined
    },
    run(query: Query<unknown>, parameters?: readonly unknown[]): number {
      const p = statementOf(query, parameters)
      return p.statement.run(...p.parameters).changes
    },
    transaction<T>(fn: () => T): T {
      return sqlite.transaction(fn)()
    },
    ping() {
      try {
        return !closed && (ping.get() as { ok: number } | undefined)?.ok === 1
      } catch {
        return false
      }
    },
    async close() {
      if (closed) return
      closed = true
      statements.clear()
      // Closing the connection checkpoints the WAL into the main file.
      await db.destroy()
    },
  }
}
