// Cleanup of ended sessions and expired refresh tokens: by call, and by schedule.
// On SQLite the scheduled run goes to a worker thread with its own connection to
// the test's database file; on PostgreSQL it runs in-process under an advisory
// lock (`database.exclusively('cleanup', ...)`), as `latchkey cleanup` does.
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, renameSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import t from 'tap'
import { cleanupSessions, startCleanupWorker } from '../src/auth/cleanup.js'
import { endedRowQueries } from '../src/auth/sessions.js'
import type { Config } from '../src/config.js'
import type { Database } from '../src/db/database.js'
import { type DatabaseConfig, type DatabaseHandle, openDatabase as openHandle } from '../src/db/dialect.js'
import { openDatabase, planNodes, postgresPlan, sqlitePlan } from './data-helper.js'
import {
  buildLoggedTestApp,
  buildTestApp,
  cookieHeader,
  login,
  onPostgres,
  signup,
  sleep,
  TEST_SECRETS,
  tempDir,
} from './helper.js'

interface LogLine {
  msg: string
  deleted?: number
  err?: { message: string; code?: string }
}

const WORKER_THREAD_ONLY =
  'the cleanup worker thread is SQLite-only; on PostgreSQL the scheduled cleanup runs in-process under an advisory lock (tested below)'
const ADVISORY_LOCK_ONLY =
  'SQLite has one server per file: exclusively() always runs there, with no lock to contend for'

/** The SQLite database behind `config`; the worker-thread tests only run there. */
function sqliteDatabase(config: Config): Extract<DatabaseConfig, { kind: 'sqlite' }> {
  if (config.database.kind !== 'sqlite') throw new Error('this test needs the SQLite database file')
  return config.database
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

const HOUR = 3_600_000
const DAY = 86_400_000

/** Inserts `count` sessions of `userId`, each with one refresh token, 500 rows per statement, in one transaction. */
async function seedSessions(
  db: Kysely<Database>,
  userId: string,
  count: number,
  times: { now: number; expiresAt: number; revokedAt: number | null; tokenExpiresAt: number },
): Promise<string[]> {
  const { now } = times
  const ids = Array.from({ length: count }, () => randomUUID())
  await db.transaction().execute(async (trx) => {
    for (let from = 0; from < count; from += 500) {
      const chunk = ids.slice(from, from + 500)
      await trx
        .insertInto('sessions')
        .values(
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
        )
        .execute()
      await trx
        .insertInto('refresh_tokens')
        .values(
          chunk.map((id) => ({
            token_hash: randomUUID(),
            session_id: id,
            created_at: now - 30 * DAY,
            expires_at: times.tokenExpiresAt,
            used_at: null,
          })),
        )
        .execute()
    }
  })
  return ids
}

/** A user row for seeded sessions to belong to. */
async function seedUser(db: Kysely<Database>, now: number): Promise<string> {
  const id = randomUUID()
  await db
    .insertInto('users')
    .values({
      id,
      email: `${id}@example.com`,
      display_name: null,
      password_hash: 'not a hash',
      created_at: now,
      updated_at: now,
    })
    .execute()
  return id
}

/** An expired, rotated-away token in each of `sessionIds`, beside its live one. */
async function seedExpiredTokens(db: Kysely<Database>, sessionIds: string[], now: number): Promise<void> {
  await db
    .insertInto('refresh_tokens')
    .values(
      sessionIds.map((sessionId) => ({
        token_hash: randomUUID(),
        session_id: sessionId,
        created_at: now - 2 * DAY,
        expires_at: now - DAY,
        used_at: now - DAY,
      })),
    )
    .execute()
}

/**
 * A migrated database seeded by `seed` before any app with a schedule opens it
 * (the seeding awaits, and a run meanwhile would see it half done): the
 * DATABASE_URL of its SQLite file or of its PostgreSQL schema, and what `seed` returned.
 */
async function seededDatabase<T>(
  t: Parameters<typeof tempDir>[0],
  seed: (db: Kysely<Database>) => Promise<T>,
): Promise<{ url: string; seeded: T }> {
  // Fixed secrets: the app that later serves this database in another DATA_DIR must use the same ones.
  const { app, config } = await buildTestApp(t, TEST_SECRETS)
  const seeded = await seed(app.db)
  await app.close()
  return { url: config.database.kind === 'sqlite' ? config.database.file : config.database.url, seeded }
}

/** The real app, a schedule on the SQLite file `file`, its info-level log lines collected. */
async function buildLoggedApp(
  t: Parameters<typeof tempDir>[0],
  env: Record<string, string>,
): Promise<{ app: FastifyInstance; lines: string[]; file: string }> {
  const { app, config, lines } = await buildLoggedTestApp(t, { ...TEST_SECRETS, ...env })
  return { app, lines, file: sqliteDatabase(config).file }
}

/**
 * `database.exclusively(name, fn)`, tried again while it returns undefined: on
 * PostgreSQL the lock is database-wide, and other test files' apps (in other
 * schemas of the same database) may hold it for a moment.
 */
async function whenFree<T>(database: DatabaseHandle, name: string, fn: () => Promise<T>): Promise<T> {
  for (const started = Date.now(); Date.now() - started < 10_000; await sleep(20)) {
    const result = await database.exclusively(name, fn)
    if (result !== undefined) return result
  }
  throw new Error(`the ${name} lock stayed taken for 10 s`)
}

const sessionIds = async (db: Kysely<Database>): Promise<string[]> =>
  (await db.selectFrom('sessions').select('id').execute()).map((row) => row.id)

const sessionCount = async (db: Kysely<Database>): Promise<number> =>
  Number(
    (
      await db
        .selectFrom('sessions')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  )

t.test('cleanup deletes expired and revoked sessions, keeps active ones', async (t) => {
  const { app, clock } = await buildTestApp(t, { JWT_REFRESH_TOKEN_DURATION: '2s' })
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
  clock.advance(2100)
  const fresh = await login(app, keeper.email)

  const deleted = await cleanupSessions(app.db, clock.now(), 2)
  t.ok(deleted >= 3, `deleted ${deleted} rows in batches of 2`)
  t.equal((await sessionIds(app.db)).length, 1, 'only the fresh session is left')
  t.equal((await app.inject({ url: '/users/me', headers: fresh.bearer })).statusCode, 200)
  for (const gone of [revoked, expiring, keeper]) {
    t.equal((await app.inject({ url: '/users/me', headers: gone.bearer })).statusCode, 401)
  }
  const tokens = await app.db.selectFrom('refresh_tokens').selectAll().execute()
  t.ok(
    tokens.every((token) => token.expires_at > clock.now()),
    'no expired refresh token is left',
  )
  t.equal(await cleanupSessions(app.db, clock.now()), 0, 'a second run finds nothing')
})

t.test('the schedule (CLEANUP_CRON) runs the cleanup', async (t) => {
  const { app } = await buildTestApp(t, { CLEANUP_CRON: '* * * * * *' })
  const account = await signup(app)
  await app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer })
  // The next run starts within a second: on SQLite in a worker thread that takes
  // a second or two to load under tsx (more while other test files run), on
  // PostgreSQL in-process once it has the advisory lock.
  for (const started = Date.now(); (await sessionCount(app.db)) > 0 && Date.now() - started < 20_000; ) {
    await sleep(50)
  }
  t.equal(await sessionCount(app.db), 0, 'the revoked session was cleaned up by the scheduler')
})

/** The index each batch query must search: by the end time it selects on. */
const BATCH_INDEXES = {
  expiredSessions: 'sessions_expires_at',
  revokedSessions: 'sessions_revoked_at',
  expiredTokens: 'refresh_tokens_expires_at',
} as const

t.test('each cleanup batch is an index range scan, never a table scan', async (t) => {
  const { app, clock } = await buildTestApp(t)
  for (const [name, query] of Object.entries(endedRowQueries(app.db, clock.now(), 250))) {
    const index = BATCH_INDEXES[name as keyof typeof BATCH_INDEXES]
    if (!onPostgres) {
      const plan = (await sqlitePlan(app, query.compile())).join(' | ')
      t.match(plan, new RegExp(`SEARCH .* USING (COVERING )?INDEX ${index} `), `${name}: ${plan}`)
      t.notMatch(plan, /\bSCAN\b/, `${name}: no scan`)
      continue
    }
    // The test tables hold a handful of rows, for which a sequential scan is the
    // planner's right choice; postgresPlan plans with `enable_seqscan = off`
    // (in its own transaction), so the plan shows the index the query can use.
    const nodes = planNodes(await postgresPlan(app, query.compile()))
    const summary = nodes.map((node) => `${node['Node Type']}${node['Index Name'] ? ` on ${node['Index Name']}` : ''}`)
    const search = nodes.find((node) => /^(Index Scan|Index Only Scan|Bitmap Index Scan)$/.test(node['Node Type']))
    t.equal(search?.['Index Name'], index, `${name}: ${summary.join(' | ')}`)
    t.match(search?.['Index Cond'], /<=/, `${name}: a range condition on the index`)
    t.notOk(
      nodes.some((node) => node['Node Type'] === 'Seq Scan'),
      `${name}: no sequential scan`,
    )
  }
})

t.test(
  'the cleanup under exclusively(cleanup) deletes only ended rows (the PostgreSQL schedule, `latchkey cleanup`)',
  async (t) => {
    const { app, clock } = await buildTestApp(t)
    const now = clock.now()
    const userId = await seedUser(app.db, now)
    const expired = await seedSessions(app.db, userId, 60, {
      now,
      expiresAt: now - DAY,
      revokedAt: null,
      tokenExpiresAt: now - DAY,
    })
    // Live when seeded, ended by the time the cleanup runs.
    const expiring = await seedSessions(app.db, userId, 30, {
      now,
      expiresAt: now + HOUR,
      revokedAt: null,
      tokenExpiresAt: now + HOUR,
    })
    const revoked = await seedSessions(app.db, userId, 40, {
      now,
      expiresAt: now + DAY,
      revokedAt: now - 1000,
      tokenExpiresAt: now + DAY,
    })
    // Revoked later than the cleanup's time: not ended yet at `at`.
    const revokedLater = await seedSessions(app.db, userId, 3, {
      now,
      expiresAt: now + DAY,
      revokedAt: now + 3 * HOUR,
      tokenExpiresAt: now + DAY,
    })
    const live = await seedSessions(app.db, userId, 5, {
      now,
      expiresAt: now + DAY,
      revokedAt: null,
      tokenExpiresAt: now + DAY,
    })
    await seedExpiredTokens(app.db, [...live, ...revokedLater], now)
    clock.advance(2 * HOUR)

    const deleted = await whenFree(app.database, 'cleanup', () => cleanupSessions(app.db, clock.now(), 25))
    t.equal(
      deleted,
      expired.length + expiring.length + revoked.length + live.length + revokedLater.length,
      'counts the ended sessions and the expired tokens of the others',
    )
    const kept = [...live, ...revokedLater].sort()
    t.same((await sessionIds(app.db)).sort(), kept, 'only the sessions not ended at that time are left')
    const tokens = await app.db.selectFrom('refresh_tokens').selectAll().execute()
    t.equal(tokens.length, kept.length, 'one token per kept session is left')
    t.ok(
      tokens.every((token) => token.expires_at > clock.now() && kept.includes(token.session_id)),
      'every token left is live and belongs to a kept session',
    )
    t.equal(await whenFree(app.database, 'cleanup', () => cleanupSessions(app.db, clock.now())), 0, 'then nothing')
  },
)

t.test(
  'while one holder has the cleanup lock, exclusively(cleanup) on another handle returns undefined without running',
  { skip: !onPostgres && ADVISORY_LOCK_ONLY },
  async (t) => {
    const { app, config } = await buildTestApp(t)
    // A second instance: its own pool on the same database.
    const other = openHandle(config.database)
    t.teardown(() => other.close())

    let release!: () => void
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    let enter!: () => void
    const inside = new Promise<void>((resolve) => {
      enter = resolve
    })
    const holding = whenFree(app.database, 'cleanup', async () => {
      enter()
      await released
      return 'first'
    })
    await Promise.race([inside, holding])

    let ran = false
    const second = await other.exclusively('cleanup', async () => {
      ran = true
      return 'second'
    })
    t.equal(second, undefined, 'the second caller gets undefined')
    t.notOk(ran, 'and its function never ran')
    const sameHandle = await app.database.exclusively('cleanup', async () => {
      ran = true
      return 'again'
    })
    t.equal(sameHandle, undefined, 'another connection of the holding pool is turned away too')
    t.notOk(ran)

    release()
    t.equal(await holding, 'first', 'the holder gets its own result')
    t.equal(
      await whenFree(other, 'cleanup', async () => 'second'),
      'second',
      'once released, the other handle takes the lock',
    )
  },
)

t.test(
  'on PostgreSQL, closing the app while the scheduled cleanup runs stops it between batches and does not hang',
  { skip: !onPostgres && 'on SQLite the scheduled cleanup runs in a worker thread, tested below' },
  async (t) => {
    const seeded = 20_000
    const { url } = await seededDatabase(t, async (db) => {
      await seedSessions(db, await seedUser(db, Date.now()), seeded, {
        now: Date.now(),
        expiresAt: 1,
        revokedAt: null,
        tokenExpiresAt: 1,
      })
    })
    const { app, lines } = await buildLoggedTestApp(t, { CLEANUP_CRON: '* * * * * *', DATABASE_URL: url })
    // A second instance's pool, to count what is left after the app has closed.
    const other = openHandle(app.config.database)
    t.teardown(() => other.close())
    for (const started = Date.now(); (await sessionCount(other.db)) === seeded; await sleep(10)) {
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
    const left = await sessionCount(other.db)
    t.ok(left > 0 && left < seeded, `stopped part way: ${left} of ${seeded} sessions left`)
    t.equal(left + (stopped.deleted ?? 0), seeded, 'the count logged is what was deleted')
  },
)

t.test(
  'the scheduled cleanup deletes ended rows in its worker thread, keeps live ones, and logs',
  { skip: onPostgres && WORKER_THREAD_ONLY },
  async (t) => {
    const now = Date.now()
    // More rows than a batch.
    const { url, seeded } = await seededDatabase(t, async (db) => {
      const userId = await seedUser(db, now)
      const expired = await seedSessions(db, userId, 150, {
        now,
        expiresAt: now - DAY,
        revokedAt: null,
        tokenExpiresAt: now - DAY,
      })
      const revoked = await seedSessions(db, userId, 120, {
        now,
        expiresAt: now + DAY,
        revokedAt: now - 1000,
        tokenExpiresAt: now + DAY,
      })
      const live = await seedSessions(db, userId, 5, {
        now,
        expiresAt: now + DAY,
        revokedAt: null,
        tokenExpiresAt: now + DAY,
      })
      // A rotated-away, expired token in each live session.
      await seedExpiredTokens(db, live, now)
      return { expired, revoked, live }
    })
    const { expired, revoked, live } = seeded
    const { app, lines } = await buildLoggedApp(t, { CLEANUP_CRON: '* * * * * *', DATABASE_URL: url })

    const done = await logLine(lines, ['session cleanup done', 'session cleanup failed'])
    t.equal(done.msg, 'session cleanup done', 'logged as done', { line: done })
    t.equal(done.deleted, expired.length + revoked.length + live.length, 'counts sessions and expired tokens')

    t.same((await sessionIds(app.db)).sort(), [...live].sort(), 'only the live sessions are left')
    const tokens = await app.db.selectFrom('refresh_tokens').selectAll().execute()
    t.equal(tokens.length, live.length, 'one token per live session is left')
    t.ok(
      tokens.every((token) => token.expires_at > now && live.includes(token.session_id)),
      'every token left is live and belongs to a live session',
    )
    const account = await signup(app)
    t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'the app still serves')
  },
)

t.test(
  'closing the app while the scheduled cleanup runs stops the worker and does not hang',
  { skip: onPostgres && WORKER_THREAD_ONLY },
  async (t) => {
    const seeded = 20_000
    const { url } = await seededDatabase(t, async (db) => {
      await seedSessions(db, await seedUser(db, Date.now()), seeded, {
        now: Date.now(),
        expiresAt: 1,
        revokedAt: null,
        tokenExpiresAt: 1,
      })
    })
    const { app, lines, file } = await buildLoggedApp(t, { CLEANUP_CRON: '* * * * * *', DATABASE_URL: url })
    for (const started = Date.now(); (await sessionCount(app.db)) === seeded; await sleep(10)) {
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
  },
)

t.test(
  'an error in the worker reaches the main thread and is logged',
  { skip: onPostgres && WORKER_THREAD_ONLY },
  async (t) => {
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
  },
)

t.test(
  'startCleanupWorker: the result, a stop while loading, and errors with their code',
  { skip: onPostgres && WORKER_THREAD_ONLY },
  async (t) => {
    const dir = tempDir(t)
    const emptyFile = path.join(dir, 'empty.db')
    new SQLite(emptyFile).close()
    await t.rejects(startCleanupWorker({ file: emptyFile, busyTimeoutMs: 5000 }, Date.now()).done, {
      code: 'SQLITE_ERROR',
    })

    const { app, config, clock } = await buildTestApp(t)
    const database = sqliteDatabase(config)
    const expiredLongAgo = { now: clock.now(), expiresAt: 1, revokedAt: null, tokenExpiresAt: 1 }
    await seedSessions(app.db, await seedUser(app.db, clock.now()), 3, expiredLongAgo)
    t.same(await startCleanupWorker(database, clock.now(), 2).done, { deleted: 3, stopped: false })
    await seedSessions(app.db, await seedUser(app.db, clock.now()), 3, expiredLongAgo)
    const early = startCleanupWorker(database, clock.now())
    const stopping = performance.now()
    await early.stop()
    t.ok(performance.now() - stopping < 1000, 'a worker still loading is stopped at once')
    t.same(await early.done, { deleted: 0, stopped: true }, 'and says so')
    t.equal(await sessionCount(app.db), 3, 'it never touched the database')
  },
)
