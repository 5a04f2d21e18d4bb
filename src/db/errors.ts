// Database errors that the rules act on, recognised alike on SQLite and PostgreSQL.
export { DatabaseBusyError } from './sqlite-driver.js'

/** A unique or primary-key constraint refused an insert or update. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
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
