// The data directory under faults: files private whatever the umask, secrets
// never silently regenerated over existing data, a damaged or emptied database
// refused at start-up, a database that answers errors or a full disk reported
// by /ready (507 STORAGE_FULL on writes, logged once a minute), and start-up
// errors that say what happened: the file, the variable, the error and the user.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import SQLite from 'better-sqlite3'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import t, { type Test } from 'tap'
import latchkey, { serverOptions } from '../src/app.js'
import { type Config, loadConfig, SECRETS_FILE } from '../src/config.js'
import { openDatabase } from '../src/db/dialect.js'
import { STORAGE_FULL_LOG_INTERVAL_MS } from '../src/db/errors.js'
import { migrateToLatest } from '../src/db/migrator.js'
import { onPostgres, PASSWORD, signup, TEST_ENV, TEST_SECRETS, TestClock, tempDir, testDatabaseEnv } from './helper.js'

const ROOT = path.resolve(import.meta.dirname, '..')
const CLI_SOURCE = path.join(ROOT, 'src', 'cli.ts')
const sqliteOnly = onPostgres && 'the SQLite file and the generated secrets file'

interface Started {
  app: FastifyInstance
  config: Config
  clock: TestClock
  /** Every log line so far, parsed. */
  logs: () => Array<Record<string, unknown> & { msg?: string; level?: number }>
  /** Every log line as written. */
  raw: string[]
}

/** The app on DATA_DIR `dir`, logging at info into `logs`, with a clock the test moves. */
async function start(
  t: Test,
  dir: string,
  env: Record<string, string> = {},
  extraRoutes?: (app: FastifyInstance) => void,
): Promise<Started> {
  const config = loadConfig({ env: { ...TEST_ENV, DATA_DIR: dir, LOG_LEVEL: 'info', ...env }, cwd: dir })
  const raw: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      raw.push(chunk.toString())
      done()
    },
  })
  const options = serverOptions(config)
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  const clock = new TestClock()
  await app.register(fp(latchkey), { config, clock })
  if (extraRoutes) await app.register(async (scope) => extraRoutes(scope))
  try {
    await app.ready()
  } catch (error) {
    await app.close().catch(() => {})
    throw error
  }
  t.teardown(() => app.close())
  return {
    app,
    config,
    clock,
    raw,
    logs: () => raw.map((line) => JSON.parse(line)),
  }
}

/** Why start-up refused: the message of loadConfig's or the app's error, which must be one line. */
async function refusal(t: Test, dir: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const { app } = await start(t, dir, env)
    await app.close()
  } catch (error) {
    const message = (error as Error).message
    t.notMatch(message, /\n/, 'one line')
    return message
  }
  t.fail('start-up should have been refused')
  return ''
}

const modeOf = (file: string): string => (statSync(file).mode & 0o777).toString(8).padStart(4, '0')

t.test(
  'with umask 0 and an existing 0755 DATA_DIR, every file is 0600 and start-up warns about the directory',
  { skip: sqliteOnly },
  async (t) => {
    const previous = process.umask(0)
    t.teardown(() => process.umask(previous))
    const dir = path.join(tempDir(t), 'data')
    mkdirSync(dir, { mode: 0o755 })
    t.equal(modeOf(dir), '0755')

    const { app, config, logs } = await start(t, dir)
    const account = await signup(app)
    const created = await app.inject({
      method: 'POST',
      url: '/secrets',
      headers: account.bearer,
      payload: { message: 'in the WAL' },
    })
    t.equal(created.statusCode, 201)

    const files = readdirSync(dir).sort()
    for (const name of ['latchkey.db', 'latchkey.db-wal', 'latchkey.db-shm', SECRETS_FILE]) {
      t.ok(files.includes(name), `${name} exists`)
    }
    t.ok(statSync(path.join(dir, 'latchkey.db-wal')).size > 0, 'the WAL holds the writes')
    // Files 0600; directories latchkey makes inside it (the mail outbox) 0700, and their files 0600.
    for (const name of files) {
      const full = path.join(dir, name)
      if (statSync(full).isDirectory()) {
        t.equal(modeOf(full), '0700', `${name}/ is 0700`)
        for (const inner of readdirSync(full))
          t.equal(modeOf(path.join(full, inner)), '0600', `${name}/${inner} is 0600`)
      } else {
        t.equal(modeOf(full), '0600', `${name} is 0600`)
      }
    }

    const warnings = logs().filter((line) => line.level === 40 && line.dataDir === config.dataDir)
    t.equal(warnings.length, 1, 'one warning line')
    t.match(warnings[0], { mode: '0755', msg: /DATA_DIR is open to other users: run chmod 700/ })

    await app.close()
    chmodSync(dir, 0o700)
    const again = await start(t, dir)
    t.same(
      again.logs().filter((line) => line.dataDir !== undefined && line.level === 40),
      [],
      'a 0700 DATA_DIR gives no warning',
    )
  },
)

t.test(
  'the first start logs where the data directory, database and generated secrets file are, never the secrets',
  { skip: sqliteOnly },
  async (t) => {
    const dir = path.join(tempDir(t), 'data')
    const { app, config, logs, raw } = await start(t, dir)
    const first = logs().filter((line) => /^first start/.test(line.msg ?? ''))
    t.equal(first.length, 1)
    t.match(first[0], {
      level: 30,
      dataDir: dir,
      database: path.join(dir, 'latchkey.db'),
      secretsFile: path.join(dir, SECRETS_FILE),
    })
    const text = raw.join('')
    for (const secret of [config.jwtSecret, config.cookieSecret, config.dataEncryptionKey]) {
      t.notOk(text.includes(secret), 'no secret in the log')
    }
    await app.close()
    const second = await start(t, dir)
    t.same(
      second.logs().filter((line) => /^first start/.test(line.msg ?? '')),
      [],
      'a later start does not say it again',
    )
  },
)

t.test(
  'a missing or partial secrets file is not regenerated over a database that holds accounts',
  { skip: sqliteOnly },
  async (t) => {
    const dir = path.join(tempDir(t), 'data')
    const secretsFile = path.join(dir, SECRETS_FILE)
    const first = await start(t, dir)
    const account = await signup(first.app)
    await first.app.inject({
      method: 'POST',
      url: '/secrets',
      headers: account.bearer,
      payload: { message: 'sealed under the first key' },
    })
    await first.app.close()
    const backup = readFileSync(secretsFile, 'utf8')

    unlinkSync(secretsFile)
    const missing = await refusal(t, dir)
    t.match(missing, /^DATA_DIR: /)
    t.match(missing, `${secretsFile} is missing`)
    t.match(missing, /, but the database holds data made with it \(.*\busers\b.*\)/)
    t.match(missing, `restore ${SECRETS_FILE} from a backup of ${dir}`)
    t.notOk(existsSync(secretsFile), 'no new secrets file was written')
    t.same(
      readdirSync(dir).filter((name) => name.endsWith('.tmp')),
      [],
      'and no temporary file left behind',
    )

    const partial = JSON.parse(backup)
    delete partial.DATA_ENCRYPTION_KEY
    const partialText = JSON.stringify(partial)
    writeFileSync(secretsFile, partialText, { mode: 0o600 })
    const lacking = await refusal(t, dir)
    t.match(lacking, `${secretsFile} lacks DATA_ENCRYPTION_KEY`)
    t.equal(readFileSync(secretsFile, 'utf8'), partialText, 'the partial file is left as it was')

    writeFileSync(secretsFile, backup, { mode: 0o600 })
    const restored = await start(t, dir)
    const login = await restored.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email: account.email, password: PASSWORD },
    })
    t.equal(login.statusCode, 200, 'with the backup restored, the account logs in')
    const secrets = await restored.app.inject({
      url: '/secrets',
      headers: { authorization: `Bearer ${login.json().accessToken}` },
    })
    t.match(secrets.json().items, [{ message: 'sealed under the first key' }], 'and its secrets read')
  },
)

t.test(
  'a database without accounts takes new secrets; they are written 0600 once it is known to be new',
  { skip: sqliteOnly },
  async (t) => {
    // A database that only has its tables: made by migrations alone, with the secrets in the environment then.
    const dir = path.join(tempDir(t), 'data')
    const secretsFile = path.join(dir, SECRETS_FILE)
    mkdirSync(dir)
    const made = openDatabase({ kind: 'sqlite', file: path.join(dir, 'latchkey.db'), busyTimeoutMs: 1000 })
    await migrateToLatest(made.db)
    await made.close()

    // loadConfig alone (as `latchkey migrate` runs it) writes nothing while a database file exists.
    const pending = loadConfig({ env: { ...TEST_ENV, DATA_DIR: dir }, cwd: dir })
    t.match(pending.secretsFile, {
      existed: false,
      pending: true,
      generated: ['JWT_SECRET', 'COOKIE_SECRET', 'DATA_ENCRYPTION_KEY'],
    })
    t.notOk(existsSync(secretsFile))

    const second = await start(t, dir)
    t.ok(existsSync(secretsFile), 'the server wrote them')
    t.equal(modeOf(secretsFile), '0600')
    t.equal(
      JSON.parse(readFileSync(secretsFile, 'utf8')).JWT_SECRET,
      second.config.jwtSecret,
      'the secrets it serves with',
    )
    t.match(
      second.logs().find((line) => /^first start/.test(line.msg ?? '')),
      { secretsFile },
      'and says where',
    )
    await signup(second.app)
    await second.app.close()

    // Data without accounts still depends on the secrets: here the signing key the first start sealed.
    const other = path.join(tempDir(t), 'data')
    const first = await start(t, other)
    await first.app.close()
    unlinkSync(path.join(other, SECRETS_FILE))
    t.match(await refusal(t, other), /is missing, but the database holds data made with it \(signing_keys\)/)
  },
)

t.test('secret messages sealed under another data key refuse start-up', async (t) => {
  const dir = path.join(tempDir(t), 'data')
  const env = await testDatabaseEnv(t)
  const first = await start(t, dir, env)
  const account = await signup(first.app)
  await first.app.inject({ method: 'POST', url: '/secrets', headers: account.bearer, payload: { message: 'x' } })
  await first.app.close()
  const message = await refusal(t, dir, { ...env, DATA_ENCRYPTION_KEY: randomBytes(32).toString('hex') })
  t.match(message, /^DATA_ENCRYPTION_KEY: the database holds secret messages sealed under another data key/)
  t.notMatch(message, env.DATA_ENCRYPTION_KEY ?? first.config.dataEncryptionKey, 'the key itself is never said')
  const again = await start(t, dir, env)
  t.equal((await again.app.inject('/ready')).statusCode, 200, 'the right key starts')
})

/** A database of several hundred KiB: users, tasks with long titles, checkpointed into the file. */
async function populatedDatabase(t: Test): Promise<{ dir: string; file: string }> {
  const dir = path.join(tempDir(t), 'data')
  const { app } = await start(t, dir)
  const account = await signup(app)
  await app.close()
  const file = path.join(dir, 'latchkey.db')
  const db = new SQLite(file)
  const insert = db.prepare(
    'insert into tasks (id, user_id, title, completed, created_at, updated_at) values (?, ?, ?, 0, ?, ?)',
  )
  db.transaction(() => {
    for (let n = 0; n < 2000; n++) insert.run(`task-${n}`, account.userId, `title ${n} ${'x'.repeat(400)}`, n, n)
  })()
  db.close()
  return { dir, file }
}

t.test(
  'an empty database file where the secrets file shows a database was made refuses start-up',
  { skip: sqliteOnly },
  async (t) => {
    const { dir, file } = await populatedDatabase(t)
    truncateSync(file, 0)
    const message = await refusal(t, dir)
    t.match(
      message,
      `DATA_DIR: ${file} is empty (0 bytes), but ${path.join(dir, SECRETS_FILE)} shows that a database was made here`,
    )
    t.match(message, /restore latchkey.db from a backup/)
    t.equal(statSync(file).size, 0, 'the file is left as it was')

    // Without a secrets file it is a new database (a file made ahead, e.g. to set its owner).
    const fresh = path.join(tempDir(t), 'data')
    mkdirSync(fresh)
    writeFileSync(path.join(fresh, 'latchkey.db'), '')
    const { app } = await start(t, fresh)
    await signup(app)
  },
)

t.test('a damaged database file refuses start-up (quick_check)', { skip: sqliteOnly }, async (t) => {
  const { dir, file } = await populatedDatabase(t)
  const size = statSync(file).size
  t.ok(size > 512 * 1024, `a database of ${size} bytes`)
  const offset = Math.floor(size / 2 / 4096) * 4096
  const fd = openSync(file, 'r+')
  writeSync(fd, randomBytes(8192), 0, 8192, offset)
  closeSync(fd)
  const message = await refusal(t, dir)
  t.match(message, `DATA_DIR: ${file} is damaged (quick_check: `)
  t.match(message, /restore it from a backup$/)
})

t.test('/ready reports a database that answers that it is damaged', { skip: sqliteOnly }, async (t) => {
  const dir = path.join(tempDir(t), 'data')
  const { app, logs } = await start(t, dir)
  const account = await signup(app)
  for (let n = 0; n < 20; n++) {
    await app.inject({ method: 'POST', url: '/tasks', headers: account.bearer, payload: { title: `task ${n}` } })
  }
  t.equal((await app.inject('/ready')).statusCode, 200)

  // Damage the tasks table's root page in the file, under the running server.
  const file = path.join(dir, 'latchkey.db')
  const other = new SQLite(file)
  const { rootpage } = other.prepare("select rootpage from sqlite_schema where name = 'tasks'").get() as {
    rootpage: number
  }
  other.pragma('wal_checkpoint(TRUNCATE)')
  const fd = openSync(file, 'r+')
  writeSync(fd, randomBytes(4096), 0, 4096, (rootpage - 1) * 4096)
  closeSync(fd)
  // A write by another connection makes the server's connection drop its page cache.
  other.pragma('user_version = 0')
  other.close()

  const tasks = await app.inject({ url: '/tasks', headers: account.bearer })
  t.equal(tasks.statusCode, 500, 'the query fails')
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { code: 'SERVICE_UNAVAILABLE', message: /damaged \(SQLITE_CORRUPT/ })
  t.equal((await app.inject('/ready')).statusCode, 503, 'and keeps saying so')
  t.equal(logs().filter((line) => /answered that it is damaged/.test(line.msg ?? '')).length, 1, 'logged once')
})

/** Why no small file system can be mounted here, or false: tmpfs mounts need Linux and root. */
const mountSkip = ((): string | false => {
  if (process.platform !== 'linux') return 'a small tmpfs needs Linux'
  const probe = mkdtempSync(path.join(tmpdir(), 'latchkey-mount-'))
  try {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { encoding: 'utf8' })
    if (mounted.status !== 0) {
      return `cannot mount a small tmpfs here (needs root): ${(mounted.stderr || mounted.error?.message || '').trim()}`
    }
    spawnSync('umount', [probe])
    return false
  } finally {
    rmSync(probe, { recursive: true, force: true })
  }
})()

/** A tmpfs of `size` on a new directory, unmounted when the test ends. */
function mountTmpfs(t: Test, size: string): string {
  const mountPoint = path.join(tempDir(t), 'small-disk')
  mkdirSync(mountPoint)
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mountPoint])
  if (mounted.status !== 0) throw new Error(`mount failed: ${mounted.stderr}`)
  t.teardown(() => {
    spawnSync('umount', ['-l', mountPoint])
  })
  return mountPoint
}

/** Writes zeros until the file system is full; returns the filler's path. */
function fill(dir: string): string {
  const filler = path.join(dir, 'filler')
  const fd = openSync(filler, 'w')
  const block = Buffer.alloc(64 * 1024)
  try {
    for (;;) writeSync(fd, block)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
    // Then the last bytes that a smaller write still fits in.
    try {
      for (;;) writeSync(fd, block, 0, 512)
    } catch {}
  } finally {
    closeSync(fd)
  }
  return filler
}

t.test(
  'a full disk: 507 STORAGE_FULL, logged once a minute, /ready says so, and writes recover',
  { skip: sqliteOnly || mountSkip },
  async (t) => {
    const mounted = mountTmpfs(t, '4m')
    const dir = path.join(mounted, 'data')
    const { app, clock, logs } = await start(t, dir)
    const account = await signup(app)
    const task = (title: string) =>
      app.inject({ method: 'POST', url: '/tasks', headers: account.bearer, payload: { title } })
    t.equal((await task('before')).statusCode, 201)

    const filler = fill(mounted)
    let full: Awaited<ReturnType<typeof task>> | undefined
    for (let n = 0; n < 500 && !full; n++) {
      const response = await task(`while full ${n}`)
      if (response.statusCode !== 201) full = response
    }
    t.ok(full, 'a write fails once the disk is full')
    t.equal(full?.statusCode, 507)
    t.match(full?.json(), { statusCode: 507, code: 'STORAGE_FULL', error: 'Insufficient Storage' })
    t.equal(full?.headers['retry-after'], '60')
    for (let n = 0; n < 5; n++) t.equal((await task(`again ${n}`)).statusCode, 507)
    t.equal((await app.inject({ url: '/tasks', headers: account.bearer })).statusCode, 200, 'reads go on')

    const fullLines = () => logs().filter((line) => /^storage full/.test(line.msg ?? ''))
    t.equal(fullLines().length, 1, 'one log line for six failed writes')
    t.match(fullLines()[0], { level: 50, database: path.join(dir, 'latchkey.db'), code: 'SQLITE_FULL' })
    t.equal(logs().filter((line) => line.msg === 'request failed').length, 0, 'and no error line per request')
    clock.advance(STORAGE_FULL_LOG_INTERVAL_MS)
    t.equal((await task('a minute later')).statusCode, 507)
    t.equal(fullLines().length, 2, 'a minute later, one more line')
    t.match(fullLines()[1], { failedWrites: 6 }, 'counting the writes that failed meanwhile')

    const ready = await app.inject('/ready')
    t.equal(ready.statusCode, 503)
    t.match(ready.json(), { code: 'STORAGE_FULL' })
    t.equal((await app.inject('/ready')).statusCode, 503, 'while it lasts')

    unlinkSync(filler)
    t.equal((await app.inject('/ready')).statusCode, 200, 'space freed: ready again')
    t.ok(logs().some((line) => /^storage no longer full/.test(line.msg ?? '')))
    const after = await task('after')
    t.equal(after.statusCode, 201, 'writes recover')
    const titles = (await app.inject({ url: '/tasks?limit=100', headers: account.bearer }))
      .json()
      .items.map((item: { title: string }) => item.title)
    t.ok(titles.includes('before') && titles.includes('after'))
    t.notOk(
      titles.some((title: string) => title.startsWith('again')),
      'no failed write was kept',
    )
    await app.close()
  },
)

t.test('a full disk at the first start says so, naming DATA_DIR', { skip: sqliteOnly || mountSkip }, async (t) => {
  const mounted = mountTmpfs(t, '256k')
  const dir = path.join(mounted, 'data')
  mkdirSync(dir)
  fill(mounted)
  const message = await refusal(t, dir)
  t.match(message, `DATA_DIR: cannot write ${path.join(dir, SECRETS_FILE)}: ENOSPC`)
  t.same(readdirSync(dir), [], 'nothing half-written is left')
})

t.test(
  'a start that cannot make the database file leaves no empty one behind',
  { skip: sqliteOnly || mountSkip },
  async (t) => {
    // A new database file is made whole under another name and linked into place, so
    // an empty latchkey.db is never one that latchkey was making: here the disk is full.
    const mounted = mountTmpfs(t, '4m')
    const dir = path.join(mounted, 'data')
    mkdirSync(dir)
    const filler = fill(mounted)
    const message = await refusal(t, dir, TEST_SECRETS)
    t.match(message, `DATA_DIR: the disk that holds ${path.join(dir, 'latchkey.db')} is full (SQLITE_FULL`)
    t.same(
      readdirSync(dir).filter((name) => name.startsWith('latchkey.db') && name !== 'latchkey.db.lock'),
      [],
      'no database file, not even a temporary one',
    )
    unlinkSync(filler)
    const { app } = await start(t, dir, TEST_SECRETS)
    await signup(app)
  },
)

t.test(
  'every kind of full disk is 507 STORAGE_FULL; without a write probe (PostgreSQL) /ready reports it for a minute',
  async (t) => {
    const dir = path.join(tempDir(t), 'data')
    const { app, clock, logs } = await start(t, dir, await testDatabaseEnv(t), (scope) => {
      // A write that fails the way a full disk fails it: SQLite, a file write, a quota, PostgreSQL.
      scope.post('/test/full/:code', async (request) => {
        throw Object.assign(new Error('no space'), { code: (request.params as { code: string }).code })
      })
    })
    for (const code of ['SQLITE_FULL', 'ENOSPC', 'EDQUOT', '53100']) {
      const response = await app.inject({ method: 'POST', url: `/test/full/${code}` })
      t.equal(response.statusCode, 507, code)
      t.equal(response.json().code, 'STORAGE_FULL')
    }
    t.equal(logs().filter((line) => /^storage full/.test(line.msg ?? '')).length, 1, 'logged once')
    const ready = await app.inject('/ready')
    if (onPostgres) {
      t.equal(ready.statusCode, 503)
      t.equal(ready.json().code, 'STORAGE_FULL')
      clock.advance(STORAGE_FULL_LOG_INTERVAL_MS)
      t.equal((await app.inject('/ready')).statusCode, 200, 'a minute without another: ready again')
    } else {
      t.equal(ready.statusCode, 200, "SQLite's write probe succeeds: the disk is not full")
    }
    t.ok(logs().some((line) => /^storage no longer full/.test(line.msg ?? '')))
  },
)

// Permissions: as root, the server runs as `nobody` (files root made are then
// someone else's); as another user, modes take their place.
const asRoot = process.getuid?.() === 0
const serverUser = asRoot ? 'nobody (uid 65534)' : `${userInfo().username} (uid ${process.getuid?.() ?? ''})`

/** Runs node with `args` as the server's user, in the project directory. */
function nodeAsServerUser(args: string[], env: Record<string, string | undefined>) {
  // Without the NODE_OPTIONS that tap adds to every child (its process-info hook writes under .tap/).
  const node = ['env', '-u', 'NODE_OPTIONS', process.execPath, ...args]
  const [command, ...rest] = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...node] : node
  return spawnSync(command as string, rest, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  })
}

/** Why the server cannot be run as another user here, or false. */
const otherUserSkip = ((): string | false => {
  if (onPostgres) return 'the SQLite file and the generated secrets file'
  const probe = nodeAsServerUser(
    ['--import', 'tsx', '-e', `import(${JSON.stringify(CLI_SOURCE.replace(/cli\.ts$/, 'config.ts'))})`],
    {},
  )
  if (probe.status === 0) return false
  return `cannot run node as ${serverUser} on this checkout: ${(probe.stderr || probe.error?.message || '').trim().split('\n')[0]}`
})()

/** `latchkey serve` as the server's user; it must refuse: exit 1 and one line on stderr. */
function serveRefused(t: Test, dir: string): string {
  const result = nodeAsServerUser(['--import', 'tsx', CLI_SOURCE, 'serve'], {
    ...TEST_ENV,
    DATA_DIR: dir,
    PORT: '0',
    HOST: '127.0.0.1',
  })
  t.equal(result.status, 1, `exit 1 (${result.stderr.trim()})`)
  const lines = result.stderr.trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  return lines[0] ?? ''
}

/** A DATA_DIR the server's user may enter. */
function sharedDir(t: Test): string {
  const parent = tempDir(t)
  chmodSync(parent, 0o755)
  const dir = path.join(parent, 'data')
  mkdirSync(dir, { mode: 0o755 })
  chmodSync(dir, 0o755)
  return dir
}

t.test(
  'an unreadable secrets file is reported as such (EACCES, the path, the user), never as bad JSON',
  { skip: otherUserSkip },
  async (t) => {
    const dir = sharedDir(t)
    const secretsFile = path.join(dir, SECRETS_FILE)
    loadConfig({ env: { DATA_DIR: dir }, cwd: dir })
    const before = readFileSync(secretsFile, 'utf8')
    if (!asRoot) chmodSync(secretsFile, 0o000)
    const line = serveRefused(t, dir)
    t.equal(
      line,
      `latchkey: invalid configuration: DATA_DIR: cannot read ${secretsFile}: EACCES as user ${serverUser}; give that user read access to it (do not replace it: tokens and secret messages depend on it)`,
    )
    t.notMatch(line, /JSON/)
    chmodSync(secretsFile, 0o600)
    t.equal(readFileSync(secretsFile, 'utf8'), before, 'the file is untouched')
  },
)

t.test('an unwritable DATA_DIR names DATA_DIR, the file and the user', { skip: otherUserSkip }, async (t) => {
  const empty = sharedDir(t)
  if (!asRoot) chmodSync(empty, 0o555)
  const first = serveRefused(t, empty)
  chmodSync(empty, 0o755)
  t.equal(
    first,
    `latchkey: invalid configuration: DATA_DIR: cannot write ${path.join(empty, SECRETS_FILE)}: EACCES as user ${serverUser}; DATA_DIR must be writable by that user and its disk not full`,
    'on the first start',
  )

  // A database and secrets the server may read, in a directory where it cannot make its lock, -wal and -shm files.
  const dir = sharedDir(t)
  const { app } = await start(t, dir)
  await app.close()
  const file = path.join(dir, 'latchkey.db')
  if (asRoot) {
    for (const name of ['latchkey.db', 'latchkey.db.lock', SECRETS_FILE]) chownSync(path.join(dir, name), 65534, 65534)
  } else {
    chmodSync(dir, 0o555)
  }
  const line = serveRefused(t, dir)
  chmodSync(dir, 0o755)
  t.match(line, `latchkey: DATA_DIR: cannot write ${file} (SQLITE_`)
  t.match(line, `as user ${serverUser}: that user needs write access to the file and to ${dir}`)
})

t.test(
  'a database file the server cannot write names the file, DATA_DIR and the user',
  { skip: otherUserSkip || (!asRoot && 'needs a file of another user: run as root') },
  async (t) => {
    const dir = sharedDir(t)
    const { app } = await start(t, dir)
    await app.close()
    // Everything is the server's but the database file, still root's and 0644.
    chownSync(dir, 65534, 65534)
    for (const name of ['latchkey.db.lock', SECRETS_FILE]) chownSync(path.join(dir, name), 65534, 65534)
    const file = path.join(dir, 'latchkey.db')
    chmodSync(file, 0o644)
    const line = serveRefused(t, dir)
    t.match(line, `latchkey: DATA_DIR: cannot write ${file} (EPERM: operation not permitted, chmod '${file}')`)
    t.match(line, `as user ${serverUser}`)
  },
)
