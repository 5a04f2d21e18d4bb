// Shared by the data API tests (lists, tasks, secrets, pagination): a bearer
// client per account, and ways of looking behind the API (query plans, raw rows,
// tampering). Raw access goes through the app's own Kysely instance (`app.db`),
// which works on SQLite and PostgreSQL alike; `openDatabase` is a second
// better-sqlite3 connection for checks that only make sense on the SQLite file.
import SQLite from 'better-sqlite3'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { CompiledQuery, sql } from 'kysely'
import type { Config } from '../src/config.js'
import type { Account } from './helper.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

export type Client = (method: Method, url: string, payload?: unknown) => Promise<LightMyRequestResponse>

/** Requests as `account`, bearer-authenticated (so CSRF checks do not apply). */
export function clientFor(app: FastifyInstance, account: Account): Client {
  return (method, url, payload) =>
    app.inject({
      method,
      url,
      headers: account.bearer,
      ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
    })
}

/** The SQLite file behind the app; throws on PostgreSQL, where there is no such file. */
export function sqliteFile(config: Config): string {
  if (config.database.kind !== 'sqlite') throw new Error('this check needs the SQLite database file')
  return config.database.file
}

/** A second connection to the app's SQLite database file, closed when the test ends. */
export function openDatabase(t: Teardown, file: string): SQLite.Database {
  const db = new SQLite(file)
  db.pragma('busy_timeout = 5000')
  t.teardown(() => db.close())
  return db
}

/** A compiled Kysely query: what the page-query builders' `.compile()` gives. */
export interface Compiled {
  sql: string
  parameters: readonly unknown[]
}

/** SQLite's EXPLAIN QUERY PLAN of `compiled`: one `detail` line per step. */
export async function sqlitePlan(app: FastifyInstance, compiled: Compiled): Promise<string[]> {
  const result = await app.db.executeQuery<{ detail: string }>(
    CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]),
  )
  return result.rows.map((row) => row.detail)
}

/** One node of PostgreSQL's EXPLAIN (FORMAT JSON) tree. */
export interface PlanNode {
  'Node Type': string
  'Index Name'?: string
  'Index Cond'?: string
  'Scan Direction'?: string
  Filter?: string
  Plans?: PlanNode[]
}

/** Every node of a plan tree, depth first. */
export const planNodes = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(planNodes)]

/**
 * PostgreSQL's EXPLAIN (FORMAT JSON) of `compiled`, planned with sequential and
 * bitmap scans off. The test tables hold a handful of rows (and no statistics),
 * and for so few the planner rightly prefers reading the whole table, or a bitmap
 * of the index followed by a sort, to walking an index in order; on a real table
 * a page's LIMIT makes the ordered index scan the cheap plan. With those two
 * priced out the plan shows which index answers the query, and sorting stays
 * allowed, so an index that cannot give the order still shows up as a Sort node.
 * `set local` keeps the settings inside this one transaction: the pooled
 * connection goes back to the app unchanged.
 */
export async function postgresPlan(app: FastifyInstance, compiled: Compiled): Promise<PlanNode> {
  return app.db.transaction().execute(async (trx) => {
    await sql`set local enable_seqscan = off`.execute(trx)
    await sql`set local enable_bitmapscan = off`.execute(trx)
    const result = await trx.executeQuery<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
      CompiledQuery.raw(`explain (format json) ${compiled.sql}`, [...compiled.parameters]),
    )
    const plan = result.rows[0]?.['QUERY PLAN'][0]?.Plan
    if (!plan) throw new Error(`no plan for ${compiled.sql}`)
    return plan
  })
}
