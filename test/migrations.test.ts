// Migrations run forward safely on existing data: a database made by the
// previous release (test/fixtures/previous-release, written by its own code)
// keeps its schema, its users and its sealed secrets; a new database gets the
// very schema the previous release made; a migration that fails leaves the
// database as it was and says why; two starts on one empty PostgreSQL schema
// apply each migration once.
import { spawn } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { Migrator, sql } from 'kysely'
import t from 'tap'
import { migrations } from '../migrations/index.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openDatabase } from '../src/db/dialect.js'
import { migrateToLatest } from '../src/db/migrator.js'
import { freshPostgresSchema, onPostgres, TEST_ENV, tempDir } from './helper.js'

const FIXTURE = path.join(import.meta.dirname, 'fixtures', 'previous-release')
/** A SQLite file's schema: every table and index with its SQL, in a stable order. */
const schemaOf = (file: string): string => {
  const db = new SQLite(file, { readonly: true })
  try {
    const rows = db
      .prepare("select type, name, tbl_name, sql from sqlite_master where name not like 'sqlite_%' order by type, name")
      .raw(true)
      .all() as string[][]
    return rows.map((row) => row.join('|')).join('\n')
  } finally {
    db.close()
  }
}

/** The schema a new database gets from every migration. */
async function latestSchema(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const file = path.join(tempDir(t), 'latest.db')
  const database = openDatabase({ kind: 'sqlite', file, busyTimeoutMs: 1000 })
  await migrateToLatest(database.db)
  await database.close()
  return schemaOf(file)
}

const PREVIOUS_SCHEMA = readFileSync(path.join(FIXTURE, 'schema.txt'), 'utf8').trim()

t.test(
  'a database made by the previous release migrates and keeps working',
  { skip: onPostgres && 'a SQLite file' },
  async (t) => {
    const dir = tempDir(t)
    copyFileSync(path.join(FIXTURE, 'latchkey.db'), path.join(dir, 'latchkey.db'))
    copyFileSync(path.join(FIXTURE, 'secrets.json'), path.join(dir, 'secrets.json'))
    const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV }, cwd: dir })
    const app = await buildApp(config)
    t.teardown(() => app.close())

    const applied = await app.db
      .selectFrom('kysely_migration' as never)
      .select('name' as never)
      .execute()
    t.same(
      (applied as Array<{ name: string }>).map((row) => row.name),
      Object.keys(migrations),
      'every migration recorded, the old one kept',
    )
    const login = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email: 'old-release@example.com', password: 'correct horse battery staple' },
    })
    t.equal(login.statusCode, 200, 'an account of the previous release logs in')
    const auth = { authorization: `Bearer ${login.json().accessToken}` }
    const secrets = await app.inject({ url: '/secrets', headers: auth })
    t.equal(secrets.statusCode, 200)
    t.match(secrets.json().items, [{ title: 'Old secret', message: 'sealed by the previous release' }])
    const tasks = await app.inject({ url: '/tasks', headers: auth })
    t.match(tasks.json().items, [{ title: 'Old task' }])
    await app.close()
    t.equal(
      schemaOf(path.join(dir, 'latchkey.db')),
      await latestSchema(t),
      'the upgraded database has the very schema a new one gets',
    )
  },
)

t.test(
  'the frozen initial migration makes the very schema the previous release made',
  { skip: onPostgres && 'a SQLite file' },
  async (t) => {
    const file = path.join(tempDir(t), 'initial.db')
    const database = openDatabase({ kind: 'sqlite', file, busyTimeoutMs: 1000 })
    const migrator = new Migrator({ db: database.db, provider: { getMigrations: async () => migrations } })
    const result = await migrator.migrateTo('2026-11-22T1700-initial')
    await database.close()
    t.error(result.error)
    // schema.txt was read off the database the previous release's own code made.
    t.equal(schemaOf(file), PREVIOUS_SCHEMA)
  },
)

t.test('a migration that fails changes nothing and names its cause', async (t) => {
  const config = onPostgres
    ? ({ kind: 'postgres', url: await freshPostgresSchema(t), poolMax: 2 } as const)
    : ({ kind: 'sqlite', file: path.join(tempDir(t), 'x.db'), busyTimeoutMs: 1000 } as const)
  const database = openDatabase(config)
  t.teardown(() => database.close())
  // A table in the way of the first migration's third table: the first two would be made, then it fails.
  await sql`create table refresh_tokens (x integer)`.execute(database.db)
  await t.rejects(migrateToLatest(database.db), /migration 2026-11-22T1700-initial failed: .*refresh_tokens/)
  const tables = await database.db.introspection.getTables()
  t.same(
    tables.map((table) => table.name).sort(),
    ['refresh_tokens'],
    'users and sessions, made before the failure, were rolled back',
  )
})

t.test(
  'kill -9 during the first start, again and again: every restart succeeds',
  { skip: onPostgres && 'the SQLite file' },
  async (t) => {
    const dir = tempDir(t)
    const cli = path.resolve(import.meta.dirname, '../dist/latchkey.cjs')
    const env = { PATH: process.env.PATH, ...TEST_ENV, DATA_DIR: dir }
    for (let round = 0; round < 6; round++) {
      const child = spawn(process.execPath, [cli, 'migrate'], { env, stdio: 'ignore' })
      const exited = new Promise((resolve) => child.once('exit', resolve))
      // Killed at a different moment each round, from before the file exists to mid-migration
      // (a round whose start finished first is killed too late: harmless).
      await new Promise((resolve) => setTimeout(resolve, 40 + round * 25))
      child.kill('SIGKILL')
      await exited
    }
    const final = spawn(process.execPath, [cli, 'migrate'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const finalExit = new Promise((resolve) => final.once('exit', resolve))
    let output = ''
    final.stdout.on('data', (chunk) => {
      output += chunk
    })
    final.stderr.on('data', (chunk) => {
      output += chunk
    })
    const code = await finalExit
    t.equal(code, 0, output)
    t.equal(schemaOf(path.join(dir, 'latchkey.db')), await latestSchema(t))
  },
)

t.test(
  'two starts together on one empty PostgreSQL schema migrate once',
  { skip: !onPostgres && 'PostgreSQL' },
  async (t) => {
    const url = await freshPostgresSchema(t)
    const handles = [1, 2, 3].map(() => openDatabase({ kind: 'postgres', url, poolMax: 2 }))
    t.teardown(() => Promise.all(handles.map((handle) => handle.close())))
    const results = await Promise.all(handles.map((handle) => migrateToLatest(handle.db)))
    t.same(results.flat().sort(), Object.keys(migrations).sort(), 'each migration applied by exactly one')
    const [first] = handles
    if (!first) throw new Error('no handle')
    const rows = await sql<{ name: string }>`select name from kysely_migration`.execute(first.db)
    t.equal(rows.rows.length, Object.keys(migrations).length)
  },
)
