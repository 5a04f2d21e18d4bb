// Database errors that the rules act on, recognised alike on SQLite and
// PostgreSQL, and the faults of the database itself (a full disk, a damaged
// file) that `/ready` reports and start-up refuses.
import { type Kysely, sql } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database } from './database.js'

export { DatabaseBusyError } from './sqlite-driver.js'

const codeOf = (error: unknown): unknown => (error as { code?: unknown } | null)?.code

/** A unique or primary-key constraint refused an insert or update. */
export function isUniqueViolation(error: unknown): boolean {
  const code = codeOf(error)
  // better-sqlite3's extended result codes; PostgreSQL's SQLSTATE unique_violation.
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505'
}

/**
 * The database cannot be reached or refuses service for now (PostgreSQL down,
 * restarting, out of connections, or the pool timed out waiting for one).
 */
export function isUnavailable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EPIPE') return true
  // SQLSTATE class 08 (connection exception), 57P01..57P03 (admin shutdown, crash shutdown, cannot connect now), 53300 (too many connections).
  if (typeof code === 'string' && (/^08/.test(code) || /^57P0[123]$/.test(code) || code === '53300')) return true
  return typeof message === 'string' && /timeout exceeded when trying to connect|Connection terminated/.test(message)
}

/**
 * No space is left for a write: SQLite's SQLITE_FULL, a file write's ENOSPC or
 * EDQUOT (a quota), PostgreSQL's disk_full (53100).
 */
export function isStorageFull(error: unknown): boolean {
  const code = codeOf(error)
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT' || code === '53100'
}

/** The database file is damaged: a malformed page, or not a database at all (PostgreSQL: data_corrupted, index_corrupted). */
export function isDamaged(error: unknown): boolean {
  const code = codeOf(error)
  if (typeof code !== 'string') return false
  return code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB' || code === 'XX001' || code === 'XX002'
}

/**
 * The start-up checks of the data directory and the database refused to
 * serve it as it is (damaged, empty where a database was expected, not
 * writable, or kept under other keys): one line, naming the variable to look at.
 */
export class DatabaseRefusedError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable}: ${detail}`)
    this.name = 'DatabaseRefusedError'
  }
}

/**
 * SQLite's quick check (page structure, record formats, NOT NULL and CHECK
 * constraints; not index contents), run at start-up before anything is
 * served or migrated. Undefined when the file is sound, else its first findings.
 */
export async function quickCheckFindings(db: Kysely<Database>): Promise<string | undefined> {
  const { rows } = await sql<{ quick_check: string }>`pragma quick_check(3)`.execute(db)
  const findings = rows.map((row) => row.quick_check)
  return findings.length === 1 && findings[0] === 'ok' ? undefined : findings.join('; ').replace(/\s+/g, ' ')
}

/**
 * One small durable write (SQLite: the header's user_version, rewritten to its
 * own value; latchkey does not use it), to learn whether writes succeed again.
 */
async function sqliteWriteProbe(db: Kysely<Database>): Promise<void> {
  const { rows } = await sql<{ user_version: number }>`pragma user_version`.execute(db)
  await sql.raw(`pragma user_version = ${Math.trunc(Number(rows[0]?.user_version ?? 0))}`).execute(db)
}

/** A full disk is logged at most this often, with the number of failed writes since the last line. */
export const STORAGE_FULL_LOG_INTERVAL_MS = 60_000

/** The logger's shape this module needs (pino's). */
interface FaultLog {
  error(object: object, message: string): void
  info(object: object, message: string): void
}

/** What `/ready` reports of the database: nothing when it serves, else the fault. */
export type DatabaseFault =
  | { kind: 'storage-full'; since: number }
  | { kind: 'damaged'; code: string }
  | { kind: 'unreachable' }

export interface DatabaseHealthOptions {
  db: Kysely<Database>
  kind: 'sqlite' | 'postgres'
  /** Whether the database answers a query now. */
  ping: () => Promise<boolean>
  clock: Clock
  log: FaultLog
  /** Names the database in log lines: the SQLite file, or "PostgreSQL" (its URL may hold a password). */
  name: string
}

/**
 * Faults of the database itself that requests run into. A full disk fails
 * every write until space is freed: it is logged once a minute (not once per
 * request), and `/ready` reports it until a write succeeds again (SQLite: a
 * probe write at each `/ready`; PostgreSQL: until a minute passes without
 * another). A damaged file does not mend itself: once a query has answered
 * SQLITE_CORRUPT, `/ready` reports it until a restart, whose quick check
 * then refuses the file.
 */
export class DatabaseHealth {
  readonly #options: DatabaseHealthOptions
  #storageFull: { since: number; lastSeen: number; failures: number; loggedAt: number } | undefined
  #damage: string | undefined

  constructor(options: DatabaseHealthOptions) {
    this.#options = options
  }

  /**
   * Notes a request's error. True when it is a full disk, which this object
   * logs (once a minute) in place of the request's own error line.
   */
  observe(error: unknown): boolean {
    const { clock, log, name } = this.#options
    if (isStorageFull(error)) {
      const now = clock.now()
      const state = this.#storageFull ?? { since: now, lastSeen: now, failures: 0, loggedAt: Number.NEGATIVE_INFINITY }
      this.#storageFull = state
      state.lastSeen = now
      state.failures += 1
      if (now - state.loggedAt >= STORAGE_FULL_LOG_INTERVAL_MS) {
        log.error(
          {
            database: name,
            code: codeOf(error),
            failedWrites: state.failures,
            since: new Date(state.since).toISOString(),
          },
          'storage full: writes fail with 507 STORAGE_FULL until space is freed on the disk that holds the database',
        )
        state.loggedAt = now
        state.failures = 0
      }
      return true
    }
    if (isDamaged(error) && this.#damage === undefined) {
      this.#damage = String(codeOf(error))
      log.error(
        { database: name, code: this.#damage },
        'the database answered that it is damaged: /ready reports 503 from now on; stop the server and restore the database from a backup',
      )
    }
    return false
  }

  /** The database's state for `/ready`: undefined when it serves. */
  async check(): Promise<DatabaseFault | undefined> {
    const { db, kind, ping, clock, log, name } = this.#options
    if (this.#damage !== undefined) return { kind: 'damaged', code: this.#damage }
    const full = this.#storageFull
    if (full) {
      let stillFull: boolean
      if (kind === 'sqlite') {
        try {
          await sqliteWriteProbe(db)
          stillFull = false
        } catch (error) {
          stillFull = isStorageFull(error)
          if (!stillFull) return (await ping()) ? undefined : { kind: 'unreachable' }
        }
      } else {
        stillFull = clock.now() - full.lastSeen < STORAGE_FULL_LOG_INTERVAL_MS
      }
      if (stillFull) return { kind: 'storage-full', since: full.since }
      if (this.#storageFull === full) this.#storageFull = undefined
      log.info(
        { database: name, since: new Date(full.since).toISOString() },
        'storage no longer full: writes succeed again',
      )
    }
    return (await ping()) ? undefined : { kind: 'unreachable' }
  }
}
