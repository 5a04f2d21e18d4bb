// Seeded databases for the large-data scenarios, built once and cached under
// bench/.cache/ (git-ignored), keyed by a hash of the migrations and of this
// seeding code's version. Built from a real latchkey data directory (the CLI
// migrates it and writes its secrets); bulk rows go in directly with
// better-sqlite3, in big transactions, into the tables the migration creates;
// their secondary indexes are dropped for the load and made again afterwards,
// from the migration's own definitions (a bulk load into five random-order
// indexes took minutes; building each index once, sorted, takes seconds).
// The PostgreSQL copy of the tasks data is not cached: it is generated inside
// PostgreSQL (INSERT ... SELECT over generate_series), in about a minute.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import Database from 'better-sqlite3'
import { BENCH_DIR, CLI, connectPostgres, freePort, ROOT, signIn, startProcess, waitFor200 } from './lib.mjs'

/** Bump when the shape of the seeded data (or the way it is laid out) changes. */
const SEED_VERSION = 2
const CACHE_DIR = path.join(BENCH_DIR, '.cache')
const BATCH_ROWS = 100_000
const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$YmVuY2ggZHVtbXkgc2FsdA$YmVuY2ggZHVtbXkgaGFzaCBub3QgYSByZWFsIG9uZQ'

export const TASKS_SEED = { users: 10_000, tasks: 1_000_000, ownerTasks: 10_000 }
/** The same owner and page on a small table (scenario 3's page-scaling reference). */
export const SMALL_TASKS_SEED = { users: 10, tasks: 1_000, ownerTasks: 100 }
export const SESSIONS_SEED = { users: 1_000, sessions: 1_000_000 }
export const OWNER = { email: 'owner@bench.invalid', password: 'bench owner passphrase 0' }

/** Hash of every migration file (name and content) and the seed version. */
export function schemaKey() {
  const hash = createHash('sha256').update(`seed v${SEED_VERSION}\n`)
  const dir = path.join(ROOT, 'migrations')
  for (const name of readdirSync(dir).sort()) {
    hash
      .update(name)
      .update('\0')
      .update(readFileSync(path.join(dir, name)))
      .update('\0')
  }
  return hash.digest('hex').slice(0, 16)
}

/** A migrated data directory (database and generated secrets) made by the CLI itself. */
async function migratedDataDir(dir, env) {
  mkdirSync(dir, { recursive: true })
  const server = startProcess({
    args: [CLI, 'migrate'],
    env: { ...env, DATA_DIR: dir },
    logFile: path.join(dir, 'seed.log'),
    cwd: dir,
  })
  const { code } = await server.exited
  if (code !== 0) throw new Error(`latchkey migrate failed (${code}); see ${path.join(dir, 'seed.log')}`)
}

function openForSeeding(dir) {
  const db = new Database(path.join(dir, 'latchkey.db'))
  db.pragma('journal_mode = WAL')
  // Seeding only: a crash here just means seeding again.
  db.pragma('synchronous = OFF')
  db.pragma('foreign_keys = ON')
  // Room for the random-order primary keys of a million rows (negative: KiB).
  db.pragma('cache_size = -524288')
  return db
}

/**
 * Runs `load` with the secondary indexes of `tables` dropped, then makes them
 * again with the SQL the migration created them with (read from sqlite_master,
 * so nothing here restates the schema). Primary keys and unique constraints
 * stay throughout.
 */
function withIndexesAfter(db, tables, load) {
  const indexes = db
    .prepare(
      `select name, sql from sqlite_master where type = 'index' and sql is not null and tbl_name in (${tables.map(() => '?').join(', ')})`,
    )
    .all(...tables)
  for (const { name } of indexes) db.exec(`drop index "${name}"`)
  load()
  for (const { sql } of indexes) db.exec(sql)
}

function finish(db, tmpDir, finalDir, meta) {
  db.pragma('wal_checkpoint(TRUNCATE)')
  db.close()
  rmSync(path.join(tmpDir, 'seed.log'), { force: true })
  writeFileSync(path.join(tmpDir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`)
  rmSync(finalDir, { recursive: true, force: true })
  renameSync(tmpDir, finalDir)
}

function insertDummyUsers(db, count, prefix, at) {
  const insert = db.prepare(
    'insert into users (id, email, display_name, password_hash, created_at, updated_at) values (?, ?, ?, ?, ?, ?)',
  )
  const ids = []
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const id = randomUUID()
      insert.run(id, `${prefix}-${i}@bench.invalid`, `Bench user ${i}`, DUMMY_HASH, at, at)
      ids.push(id)
    }
  })()
  return ids
}

/** Starts latchkey once on `dir` (it migrates) and signs the owner up through the API, so it has a real password. */
async function signUpOwner(dir, env) {
  const port = await freePort()
  const server = startProcess({
    args: [CLI, 'serve'],
    env: { ...env, DATA_DIR: dir, PORT: String(port) },
    logFile: path.join(dir, 'seed.log'),
    cwd: dir,
  })
  try {
    await waitFor200(port, '/health', { child: server.child })
    await signIn(port, OWNER)
  } finally {
    await server.stop()
  }
}

/**
 * 1,000,000 tasks across 10,000 users (`size`, TASKS_SEED); the owner (signed
 * up through the API, so it has a real password) holds 10,000 of them. Rows are
 * inserted in creation order with the users interleaved, as a database that
 * grew over time would be.
 */
async function seedTasks(tmpDir, env, log, size = TASKS_SEED) {
  await migratedDataDir(tmpDir, env)
  await signUpOwner(tmpDir, env)

  const db = openForSeeding(tmpDir)
  const owner = db.prepare('select id from users where email = ?').get(OWNER.email).id
  const start = Date.now() - size.tasks * 500
  const others = insertDummyUsers(db, size.users - 1, 'tasks', start)
  const insert = db.prepare(
    'insert into tasks (id, user_id, list_id, title, completed, due_at, notes, created_at, updated_at) values (?, ?, null, ?, ?, ?, ?, ?, ?)',
  )
  const every = size.tasks / size.ownerTasks
  const batch = db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const user = i % every === 0 ? owner : others[i % others.length]
      const at = start + i * 500
      insert.run(
        randomUUID(),
        user,
        `Task ${i}: water the plants and call back`,
        i % 3 === 0 ? 1 : 0,
        i % 4 === 0 ? at + 86_400_000 : null,
        i % 10 === 0 ? 'Some notes about this task, long enough to look like something a person wrote.' : null,
        at,
        at,
      )
    }
  })
  withIndexesAfter(db, ['tasks'], () => {
    for (let from = 0; from < size.tasks; from += BATCH_ROWS) {
      batch(from, Math.min(from + BATCH_ROWS, size.tasks))
      if (size.tasks > BATCH_ROWS) {
        log(
          `  tasks: ${Math.min(from + BATCH_ROWS, size.tasks).toLocaleString('en')} / ${size.tasks.toLocaleString('en')}`,
        )
      }
    }
  })
  const ownerTasks = db.prepare('select count(*) as n from tasks where user_id = ?').get(owner).n
  return { db, meta: { owner: { ...OWNER, id: owner, tasks: ownerTasks }, ...size } }
}

/** 1,000,000 ended sessions (all expired, one in ten also revoked), each with its expired refresh token. */
async function seedSessions(tmpDir, env, log) {
  await migratedDataDir(tmpDir, env)
  const db = openForSeeding(tmpDir)
  const now = Date.now()
  const users = insertDummyUsers(db, SESSIONS_SEED.users, 'sessions', now - 90 * 86_400_000)
  const session = db.prepare(
    'insert into sessions (id, user_id, created_at, last_used_at, expires_at, absolute_expires_at, revoked_at, user_agent, ip) values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const token = db.prepare(
    'insert into refresh_tokens (token_hash, session_id, created_at, expires_at, used_at) values (?, ?, ?, ?, null)',
  )
  const batch = db.transaction((from, to) => {
    for (let i = from; i < to; i++) {
      const id = randomUUID()
      // Created 60..38 days ago, expired 7 days later: all ended well before today.
      const created = now - 60 * 86_400_000 + Math.floor((i / SESSIONS_SEED.sessions) * 22 * 86_400_000)
      const expires = created + 7 * 86_400_000
      session.run(
        id,
        users[i % users.length],
        created,
        created + 3_600_000,
        expires,
        created + 30 * 86_400_000,
        i % 10 === 0 ? created + 3_600_000 : null,
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36',
        `10.0.${(i >> 8) & 255}.${i & 255}`,
      )
      token.run(randomBytes(32).toString('base64url'), id, created, expires)
    }
  })
  withIndexesAfter(db, ['sessions', 'refresh_tokens'], () => {
    for (let from = 0; from < SESSIONS_SEED.sessions; from += BATCH_ROWS) {
      batch(from, Math.min(from + BATCH_ROWS, SESSIONS_SEED.sessions))
      log(
        `  sessions: ${Math.min(from + BATCH_ROWS, SESSIONS_SEED.sessions).toLocaleString('en')} / ${SESSIONS_SEED.sessions.toLocaleString('en')}`,
      )
    }
  })
  return { db, meta: { ...SESSIONS_SEED } }
}

/**
 * The tasks data of `seedTasks` (same counts, same rows, same interleaving) in
 * the empty PostgreSQL database that `env.DATABASE_URL` names: latchkey
 * migrates it and signs the owner up, then every other row is generated inside
 * PostgreSQL in batches of INSERT ... SELECT over generate_series. `dir` is a
 * scratch data directory (the server's log). Returns the meta of `ensureSeeded`.
 */
export async function seedTasksPostgres(dir, env, log) {
  const started = performance.now()
  mkdirSync(dir, { recursive: true })
  await signUpOwner(dir, env)
  const db = await connectPostgres(env.DATABASE_URL)
  try {
    // Seeding only: a crash here just means seeding again.
    await db.query('set synchronous_commit = off')
    const owner = (await db.query('select id from users where email = $1', [OWNER.email])).rows[0].id
    const start = Date.now() - TASKS_SEED.tasks * 500
    const others = TASKS_SEED.users - 1
    await db.query(
      `create temporary table bench_users as
         select n, gen_random_uuid()::text as id from generate_series(0, ${others - 1}) as n`,
    )
    await db.query('alter table bench_users add primary key (n)')
    await db.query(
      `insert into users (id, email, display_name, password_hash, created_at, updated_at)
         select id, 'tasks-' || n || '@bench.invalid', 'Bench user ' || n, $1, $2::bigint, $2::bigint from bench_users`,
      [DUMMY_HASH, start],
    )
    const every = TASKS_SEED.tasks / TASKS_SEED.ownerTasks
    // As on SQLite: the secondary indexes are made after the load, with the
    // migration's own definitions (constraints' indexes stay throughout).
    const { rows: indexes } = await db.query(
      `select i.indexname, i.indexdef from pg_indexes i
        where i.schemaname = current_schema() and i.tablename = 'tasks'
          and not exists (select 1 from pg_constraint c where c.conname = i.indexname)`,
    )
    for (const { indexname } of indexes) await db.query(`drop index "${indexname}"`)
    for (let from = 0; from < TASKS_SEED.tasks; from += BATCH_ROWS) {
      const to = Math.min(from + BATCH_ROWS, TASKS_SEED.tasks)
      await db.query(
        `insert into tasks (id, user_id, list_id, title, completed, due_at, notes, created_at, updated_at)
           select gen_random_uuid()::text,
                  case when i % ${every} = 0 then $1 else u.id end,
                  null,
                  'Task ' || i || ': water the plants and call back',
                  case when i % 3 = 0 then 1 else 0 end,
                  case when i % 4 = 0 then $2::bigint + i * 500 + 86400000 end,
                  case when i % 10 = 0 then 'Some notes about this task, long enough to look like something a person wrote.' end,
                  $2::bigint + i * 500,
                  $2::bigint + i * 500
             from generate_series(${from}, ${to - 1}) as i
             join bench_users as u on u.n = i % ${others}
            order by i`,
        [owner, start],
      )
      log(`  tasks (PostgreSQL): ${to.toLocaleString('en')} / ${TASKS_SEED.tasks.toLocaleString('en')}`)
    }
    for (const { indexdef } of indexes) await db.query(indexdef)
    // What autovacuum would have done to a table that grew over time: planner
    // statistics and a visibility map (index-only scans).
    await db.query('vacuum (analyze) users, tasks')
    const ownerTasks = Number((await db.query('select count(*) as n from tasks where user_id = $1', [owner])).rows[0].n)
    const seconds = ((performance.now() - started) / 1000).toFixed(1)
    log(`  seeded PostgreSQL in ${seconds} s`)
    return { owner: { ...OWNER, id: owner, tasks: ownerTasks }, ...TASKS_SEED, seededIn: `${seconds} s` }
  } finally {
    await db.end()
  }
}

const SEEDERS = {
  tasks: seedTasks,
  'tasks-small': (tmpDir, env, log) => seedTasks(tmpDir, env, log, SMALL_TASKS_SEED),
  sessions: seedSessions,
}

/**
 * The cached seeded data directory `kind` ('tasks', 'tasks-small' or 'sessions'), building it
 * first if missing. Returns `{ dir, meta }`; copy `dir` before serving from it.
 */
export async function ensureSeeded(kind, env, log) {
  const finalDir = path.join(CACHE_DIR, `${kind}-${schemaKey()}`)
  if (existsSync(path.join(finalDir, 'meta.json'))) {
    return { dir: finalDir, meta: JSON.parse(readFileSync(path.join(finalDir, 'meta.json'), 'utf8')), cached: true }
  }
  const tmpDir = `${finalDir}.tmp-${process.pid}`
  rmSync(tmpDir, { recursive: true, force: true })
  const started = performance.now()
  log(`seeding ${kind} database (once; cached in ${path.relative(ROOT, finalDir)})`)
  const { db, meta } = await SEEDERS[kind](tmpDir, env, log)
  finish(db, tmpDir, finalDir, { ...meta, seededIn: `${((performance.now() - started) / 1000).toFixed(1)} s` })
  return { dir: finalDir, meta, cached: false }
}

/** A private copy of a cached data directory, for a server to change freely. */
export function copyDataDir(from, to) {
  cpSync(from, to, { recursive: true, filter: (source) => !source.endsWith('meta.json') })
  return to
}
