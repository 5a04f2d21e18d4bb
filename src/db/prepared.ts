// Hot-path reads (the per-request session check), compiled once and run the
// fastest way each dialect offers, behind the same repository function:
// - SQLite: the cached statement, synchronously, when no transaction is open or
//   waiting on the connection (else the ordinary queued way);
// - PostgreSQL: a named prepared statement on the pool (`pg` prepares it once
//   per connection; PostgreSQL then skips parsing and planning).
// Anything not registered here (a transaction) runs through Kysely as usual.
import { createHash } from 'node:crypto'
import type { Compilable, Kysely } from 'kysely'
import type { Database } from './database.js'

/** The first row of a read, or undefined. */
export type ReadRunner = <R>(
  sql: string,
  parameters: readonly unknown[],
  name: string,
) => Promise<R | undefined> | R | undefined

const runners = new WeakMap<Kysely<Database>, ReadRunner>()

export function registerReadRunner(db: Kysely<Database>, runner: ReadRunner): void {
  runners.set(db, runner)
}

/** A read of one row compiled once; call it with the values of its parameters, in order. */
export function prepareReadFirst<R>(
  db: Kysely<Database>,
  query: Compilable<R>,
): (parameters: readonly unknown[]) => Promise<R | undefined> | R | undefined {
  const compiled = query.compile()
  const runner = runners.get(db)
  if (!runner) return async (parameters) => (await db.executeQuery<R>({ ...compiled, parameters })).rows[0]
  const name = `latchkey_${createHash('sha256').update(compiled.sql).digest('hex').slice(0, 24)}`
  return (parameters) => runner<R>(compiled.sql, parameters, name)
}
