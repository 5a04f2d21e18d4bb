// The SQLite file shared with other connections (the cleanup worker, `latchkey
// cleanup`, an operator's sqlite3 shell): waiting for the write lock never
// freezes the server, a write that cannot get it in time is a clear 503, write
// transactions begin IMMEDIATE so they never fail half-way with SQLITE_BUSY, and
// a second server on the same file is refused.
import { randomUUID } from 'node:crypto'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { startCleanupWorker } from '../src/auth/cleanup.js'
import { loadConfig } from '../src/config.js'
import { buildTestApp, cookieHeader, cookiesOf, login, onPostgres, signup, TEST_ENV } from './helper.js'

const skip = onPostgres && 'SQLite file locking'

/** A second connection to the file, as another process would hold it. */
function otherConnection(t: { teardown(fn: () => unknown): void }, file: string): SQLite.Database {
  const db = new SQLite(file)
  db.pragma('busy_timeout = 5000')
  t.teardown(() => db.close())
  return db
}

const fileOf = (config: { database: { kind: string; file?: string } }): string => {
  if (config.database.kind !== 'sqlite' || !config.database.file) throw new Error('not SQLite')
  return config.database.file
}

t.test(
  'while another connection holds the write lock, reads and /health go on; a write answers 503 DATABASE_BUSY',
  { skip },
  async (t) => {
    const { app, config } = await buildTestApp(t, { DATABASE_BUSY_TIMEOUT: '1s' })
    const account = await signup(app)
    const created = await app.inject({
      method: 'POST',
      url: '/tasks',
      headers: account.bearer,
      payload: { title: 'a' },
    })
    const taskId = created.json().task.id
    const other = otherConnection(t, fileOf(config))
    other.exec('BEGIN IMMEDIATE')
    try {
      const started = performance.now()
      const write = app.inject({
        method: 'PATCH',
        url: `/tasks/${taskId}`,
        headers: account.bearer,
        payload: { title: 'b' },
      })
      // While the write waits for the lock:
      const health = await app.inject({ url: '/health' })
      t.equal(health.statusCode, 200)
      t.ok(performance.now() - started < 500, '/health did not wait for the lock')
      const read = await app.inject({ url: `/tasks/${taskId}`, headers: account.bearer })
      t.equal(read.statusCode, 200, 'reads go on')
      t.equal(read.json().task.title, 'a')
      const refused = await write
      t.equal(refused.statusCode, 503)
      t.equal(refused.json().code, 'DATABASE_BUSY')
      t.ok(refused.headers['retry-after'], 'Retry-After')
    } finally {
      other.exec('ROLLBACK')
    }
    const retried = await app.inject({
      method: 'PATCH',
      url: `/tasks/${taskId}`,
      headers: account.bearer,
      payload: { title: 'b' },
    })
    t.equal(retried.statusCode, 200, 'once the lock is free, the write goes through')
  },
)

t.test('a write waits for a short lock instead of failing', { skip }, async (t) => {
  const { app, config } = await buildTestApp(t)
  const account = await signup(app)
  const other = otherConnection(t, fileOf(config))
  other.exec('BEGIN IMMEDIATE')
  setTimeout(() => other.exec('COMMIT'), 150)
  const created = await app.inject({ method: 'POST', url: '/tasks', headers: account.bearer, payload: { title: 'x' } })
  t.equal(created.statusCode, 201)
})

t.test('refreshes and PATCHes under a cleanup worker and a second writer: no 5xx', { skip }, async (t) => {
  const { app, config, clock } = await buildTestApp(t)
  const file = fileOf(config)
  const account = await signup(app)
  // Ended sessions for the cleanup to delete, in batches, all through the load.
  const seed = otherConnection(t, file)
  const insert = seed.prepare(
    'insert into sessions (id, user_id, created_at, last_used_at, expires_at, absolute_expires_at, revoked_at, user_agent, ip) values (?, ?, 0, 0, 1, 1, null, null, null)',
  )
  seed.transaction(() => {
    for (let i = 0; i < 20_000; i++) insert.run(randomUUID(), account.userId)
  })()
  const tasks = await Promise.all(
    Array.from(
      { length: 5 },
      async (_, i) =>
        (
          await app.inject({ method: 'POST', url: '/tasks', headers: account.bearer, payload: { title: `t${i}` } })
        ).json().task.id as string,
    ),
  )
  const sessions = await Promise.all(Array.from({ length: 5 }, () => login(app, account.email)))

  const cleanup = startCleanupWorker(config.database as { file: string; busyTimeoutMs: number }, clock.now(), 50)
  // A second writer: 10 ms write transactions, back to back with short pauses.
  const writer = otherConnection(t, file)
  let writing = true
  const writes = (async () => {
    while (writing) {
      writer.exec('BEGIN IMMEDIATE')
      const until = performance.now() + 10
      while (performance.now() < until)
        writer.prepare('update users set updated_at = updated_at where id = ?').run(account.userId)
      writer.exec('COMMIT')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()

  const statuses: number[] = []
  await Promise.all(
    sessions.map(async (session, i) => {
      let refresh = session.cookies.refresh_token
      for (let round = 0; round < 20; round++) {
        const refreshed = await app.inject({
          method: 'POST',
          url: '/auth/refresh',
          headers: { cookie: cookieHeader({ refresh_token: refresh }) },
        })
        statuses.push(refreshed.statusCode)
        refresh = cookiesOf(refreshed).refresh_token ?? refresh
        const patched = await app.inject({
          method: 'PATCH',
          url: `/tasks/${tasks[i]}`,
          headers: account.bearer,
          payload: { completed: round % 2 === 0 },
        })
        statuses.push(patched.statusCode)
      }
    }),
  )
  writing = false
  await writes
  await cleanup.stop()
  t.same(
    statuses.filter((status) => status >= 500),
    [],
    `no 5xx in ${statuses.length} requests`,
  )
  t.ok(statuses.every((status) => status === 200))
})

t.test('a second server on the same SQLite file is refused with one clear line', { skip }, async (t) => {
  const { config, dir } = await buildTestApp(t)
  const second = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV }, cwd: dir })
  await t.rejects(buildApp(second), {
    name: 'DatabaseInUseError',
    message: `another latchkey server is already using ${fileOf(config)} (its lock file ${fileOf(config)}.lock is held); stop it first`,
  })
})
