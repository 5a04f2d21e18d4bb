// Shared by the data API tests (lists, tasks, secrets, pagination): a bearer
// client per account and a second, direct connection to the test database for
// looking behind the API (query plans, raw rows, tampering).
import SQLite from 'better-sqlite3'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
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

/** A second connection to the app's database file, closed when the test ends. */
export function openDatabase(t: Teardown, file: string): SQLite.Database {
  const db = new SQLite(file)
  db.pragma('busy_timeout = 5000')
  t.teardown(() => db.close())
  return db
}
