// Cleanup of ended sessions and expired refresh tokens, by call and by schedule
// (in a worker thread with its own connection to the test's database file).
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, renameSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { cleanupSessions, startCleanupWorker } from '../src/auth/cleanup.js'
import { endedRowQueries } from '../src/auth/sessions.js'
import type { Store } from '../src/db/connection.js'
import { openStore } from '../src/db/connection.js'
import { openDatabase } from './data-helper.js'
import { buildLoggedTestApp, buildTestApp, cookieHeader, login, signup, sleep, tempDir } from './helper.js'

interface LogLine {
  msg: string
  deleted?: number
  err?: { message: string; code?: string }
}

/** The real app on a fresh database file, its info-level log lines collected. */
async function buildLoggedApp(
  t: Parameters<typeof tempDir>[0],
  env: Record<string, string>,
): Promise<{ app: FastifyInstance; lines: string[]; file: string }> {
  const { app, config, lines } = await buildLoggedTestApp(t, env)
  return { app, lines, file: config.databaseFile }
}

/** Resolves the first log line with one of `messages`; fails after `timeoutMs`. */
async function logLine(lines: string[], messages: string[], timeoutMs = 30_000): Promise<LogLine> {
  for (const started = Date.now(); ; await sleep(20)) {
    const line = lines.map((text) => JSON.parse(text) as LogLine).find((entry) => messages.includes(entry.msg))
    if (line) return line
    if (Date.now() - started > timeoutMs) break
  }
  throw new Error(`no ${messages.join(' or ')} log line within ${timeoutMs} ms`)
}

const DAY = 86_400_000

/** Inserts `count` sessions of `userId`, each with one refresh token, 500 rows per statement. */
function seedSessions(
  store: Store,
  userId: string,
  count: number,
  times: { expiresAt: number; revokedAt: number | null; tokenExpiresAt: number },
): string[] {
  const ids = Array.from({ length: count }, () => randomUUID())
  const now = Date.now()
  store.transaction(() => {
    for (let from = 0; from < count; from += 500) {
      const chunk = ids.slice(from, from + 500)
      store.run(
        store.db.insertInto('sessions').values(
          chunk.map((id) => ({
            id,
            user_id: userId,
            created_at: now - 30 * DAY,
            last_used_at: now - 30 * DAY,
            expires_at: times.expiresAt,
            absolute_expires_at: Math.max(times.expiresAt, now + DAY),
            revoked_at: times.revokedAt,
            user_agent: null,
            ip: null,
          })),
        ),
      )
      store.run(
        store.db.insertInto('refresh_tokens').values(
          chunk.map((id) => ({
            token_hash: randomUUID(),
            session_id: id,
            created_at: now - 30 * DAY,
            expires_at: times.tokenExpiresAt,
            used_at: null,
          })),
        ),
      )
    }
  })
  return ids
}

/** A user row for seeded sessions to belong to. */
function seedUser(store: Store): string {
  const id = randomUUID()
  const now = Date.now()
  store.run(
    store.db.insertInto('users').values({
      id,
      email: `${id}@example.com`,
      display_name: null,
      password_hash: 'not a hash',
      created_at: now,
      updated_at: now,
    }),
  )
  return id
}

t.test('cleanup deletes expired and revoked sessions, keeps active ones', async (t) => {
  const { app } = await buildTestApp(t, { JWT_REFRESH_TOKEN_DURATION: '2s' })
  const store = app.store
  const keeper = await signup(app)
  const revoked = await login(app, keeper.email)
  await app.inject({ method: 'POST', url: '/auth/logout', headers: revoked.bearer })
  const expiring = await login(app, keeper.email)
  // Rotation leaves a used token behind in the kept session.
  await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: cookieHeader({ refresh_token: keeper.cookies.refresh_token }) },
  })
  await sleep(2100)
  const fresh = await login(app, keeper.email)

  const deleted = await cleanupSessions(store, Date.now(), 2)
  t.ok(deleted >= 3, `deleted ${deleted} rows in batches of 2`)
  const sessions = store.all(store.db.selectFrom('sessions').select('id'))
  t.equal(sessions.length, 1, 'only the fresh session is left')
  t.equal((await app.inject({ url: '/users/me', headers: fresh.bearer })).statusCode, 200)
  for (const gone of [revoked, expiring, keeper]) {
    t.equal((await app.inject({ url: '/users/me', headers: gone.bearer })).statusCode, 401)
  }
  const tokens = store.all(store.db.selectFrom('refresh_tokens').selectAll())
  t.ok(
    tokens.every((token) => token.expires_at > Date.now()),
    'no expired refresh token is left',
  )
  t.equal(await cleanupSessions(store, Date.now()), 0, 'a second run finds nothing')
})

t.test('the schedule (CLEANUP_CRON) runs the cleanup', async (t) => {
  const { app } = await buildTestApp(t, { CLEANUP_CRON: '* * * * * *' })
  const account = await signup(app)
  await app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer })
  // The next run starts within a second, in a worker thread that takes a second
  // or two to load under tsx (more while other test files run).
  const sessions = () => app.store.all(app.store.db.selectFrom('sessions').select('id'))
  for (const started = Date.now(); sessions().length > 0 && Date.now() - started < 20_000; ) await sleep(50)
  t.equal(sessions().length, 0, 'the revoked session was cleaned up by the scheduler')
})

t.test('each cleanup batch is an index range scan, never a table scan', async (t) => {
  const { app } = await buildTestApp(t)
  const { store } = app
  for (const [name, query] of Object.entries(endedRowQueries(store, Date.now(), 250))) {
    const compiled = query.compile()
    const plan = store
      .all<{ detail: string }>({ ...compiled, sql: `explain query plan ${compiled.sql}` })
      .map((row) => row.detail)
      .join(' | ')
    t.match(plan, /SEARCH .* USING (COVERING )?INDEX/, `${name}: ${plan}`)
    t.notMatch(plan, /\bSCAN\b/, `${name}: no scan`)
  }
})

t.test('the scheduled cleanup deletes ended rows in its worker thread, keeps live ones, and logs', async (t) => {
  const { app, lines } = await buildLoggedApp(t, { CLEANUP_CRON: '* * * * * *' })
  const { store } = app
  // Seeded before the first run can fire (no await in between): more rows than a batch.
  const now = Date.now()
  const userId = seedUser(store)
  const expired = seedSessions(store, userId, 150, { expiresAt: now - DAY, revokedAt: null, tokenExpiresAt: now - DAY })
  const revoked = seedSessions(store, userId, 120, {
    expiresAt: now + DAY,
    revokedAt: now - 1000,
    tokenExpiresAt: now + DAY,
  })
  const live = seedSessions(store, userId, 5, { expiresAt: now + DAY, revokedAt: null, tokenExpiresAt: now + DAY })
  // A rotated-away, expired token in each live session.
  store.run(
    store.db.insertInto('refresh_tokens').values(
      live.map((sessionId) => ({
        token_hash: randomUUID(),
        session_id: sessionId,
        created_at: now - 2 * DAY,
        expires_at: now - DAY,
        used_at: now - DAY,
      })),
    ),
  )

  const done = await logLine(lines, ['session cleanup done', 'session cleanup failed'])
  t.equal(done.msg, 'session cleanup done', 'logged as done', { line: done })
  t.equal(done.deleted, expired.length + revoked.length + live.length, 'counts sessions and expired tokens')

  const sessions = store.all(store.db.selectFrom('sessions').select('id')).map((row) => row.id)
  t.same(sessions.sort(), [...live].sort(), 'only the live sessions are left')
  const tokens = store.all(store.db.selectFrom('refresh_tokens').selectAll())
  t.equal(tokens.length, live.length, 'one token per live session is left')
  t.ok(
    tokens.every((token) => token.expires_at > now && live.includes(token.session_id)),
    'every token left is live and belongs to a live session',
  )
  const account = await signup(app)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'the app still serves')
})

t.test('closing the app while the scheduled cleanup runs stops the worker and does not hang', async (t) => {
  const { app, lines, file } = await buildLoggedApp(t, { CLEANUP_CRON: '* * * * * *' })
  const { store } = app
  const seeded = 20_000
  seedSessions(store, seedUser(store), seeded, { expiresAt: 1, revokedAt: null, tokenExpiresAt: 1 })
  const count = () => store.get(store.db.selectFrom('sessions').select((eb) => eb.fn.countAll<number>().as('n')))?.n
  for (const started = Date.now(); count() === seeded; await sleep(10)) {
    if (Date.now() - started > 30_000) throw new Error('the cleanup did not start within 30 s')
  }

  const closing = performance.now()
  await app.close()
  const closeMs = performance.now() - closing
  t.ok(closeMs < 5_000, `closed in ${closeMs.toFixed(0)} ms`)
  const stopped = await logLine(
    lines,
    ['session cleanup stopped', 'session cleanup done', 'session cleanup failed'],
    1000,
  )
  t.equal(stopped.msg, 'session cleanup stopped', 'logged as stopped', { line: stopped })

  const db = openDatabase(t, file)
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the database is intact')
  const left = (db.prepare('select count(*) as n from sessions').get() as { n: number }).n
  t.ok(left > 0 && left < seeded, `stopped part way: ${left} of ${seeded} sessions left`)
  t.equal(left + (stopped.deleted ?? 0), seeded, 'the count logged is what was deleted')
})

t.test('an error in the worker reaches the main thread and is logged', async (t) => {
  const { lines, file } = await buildLoggedApp(t, { CLEANUP_CRON: '* * * * * *' })
  // The database moves away under the server, which keeps its open files; each
  // worker opens the configured path anew and finds an empty database there.
  const moved = path.join(path.dirname(file), 'moved')
  mkdirSync(moved)
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(file + suffix)) renameSync(file + suffix, path.join(moved, path.basename(file) + suffix))
  }
  const failed = await logLine(lines, ['session cleanup failed', 'session cleanup done'])
  t.equal(failed.msg, 'session cleanup failed', 'logged as failed', { line: failed })
  t.match(failed.err, { message: /no such table: sessions/, code: 'SQLITE_ERROR' }, 'with the SQLite error')
})

t.test('startCleanupWorker: the result, a stop while loading, and errors with their code', async (t) => {
  const dir = tempDir(t)
  const emptyFile = path.join(dir, 'empty.db')
  await openStore(emptyFile).close()
  await t.rejects(startCleanupWorker(emptyFile, Date.now()).done, { code: 'SQLITE_ERROR' })

  const { app, config } = await buildTestApp(t)
  const { store } = app
  seedSessions(store, seedUser(store), 3, { expiresAt: 1, revokedAt: null, tokenExpiresAt: 1 })
  t.same(await startCleanupWorker(config.databaseFile, Date.now(), 2).done, { deleted: 3, stopped: false })
  seedSessions(store, seedUser(store), 3, { expiresAt: 1, revokedAt: null, tokenExpiresAt: 1 })
  const early = startCleanupWorker(config.databaseFile, Date.now())
  const stopping = performance.now()
  await early.stop()
  t.ok(performance.now() - stopping < 1000, 'a worker still loading is stopped at once')
  t.same(await early.done, { deleted: 0, stopped: true }, 'and says so')
  t.equal(store.all(store.db.selectFrom('sessions').select('id')).length, 3, 'it never touched the database')
})
