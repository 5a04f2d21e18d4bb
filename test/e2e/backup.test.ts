// End to end: `latchkey backup FILE` (the built CLI) takes a consistent copy of
// a running server's SQLite database while requests write to it; the README's
// restore procedure, run as written, puts it into a new DATA_DIR; latchkey
// starts on it, the users log in, their secret messages decrypt, and
// `PRAGMA integrity_check` is ok. Scheduled backups (BACKUP_CRON) keep the
// newest BACKUP_KEEP. On PostgreSQL the command explains pg_dump and fails.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { onPostgres, PASSWORD, TEST_ENV, tempDir, testDatabaseEnv, uniqueEmail } from '../helper.js'
import { CLI, freePort, json, spawnServer, stopServer, untilHealthy } from './server-process.js'

const ROOT = path.resolve(import.meta.dirname, '../..')
const README = path.join(ROOT, 'README.md')

/** The shell block of the README's restore procedure (the one that starts with `BACKUP=`). */
function restoreProcedure(): string {
  const blocks = [...readFileSync(README, 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? '')
  const block = blocks.find((text) => text.startsWith('BACKUP='))
  if (!block) throw new Error('README: no restore block (a sh block starting with BACKUP=)')
  return block
}

const cli = (dir: string, env: Record<string, string> = {}) => ({
  cwd: dir,
  env: { PATH: process.env.PATH ?? '', ...TEST_ENV, DATA_DIR: dir, ...env },
})

/** Runs the CLI without blocking this process's event loop (the write load goes on meanwhile). */
function runCli(dir: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], cli(dir))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => {
      stdout += chunk
    })
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.on('exit', (status) => resolve({ status, stdout, stderr }))
  })
}

const mode = (file: string) => statSync(file).mode & 0o777

t.test(
  'on PostgreSQL it explains pg_dump and exits non-zero',
  { skip: !onPostgres && 'PostgreSQL only' },
  async (t) => {
    const dir = tempDir(t)
    const env = await testDatabaseEnv(t)
    const result = spawnSync(process.execPath, [CLI, 'backup', path.join(dir, 'copy.db')], {
      ...cli(dir, env),
      encoding: 'utf8',
    })
    t.equal(result.status, 1)
    t.match(result.stderr, /uses PostgreSQL/)
    t.match(result.stderr, /pg_dump --format=custom/)
    t.same(readdirSync(dir), [], 'nothing written')
  },
)

t.test(
  'backup under a write load, restore as the README says, serve it',
  { skip: onPostgres && 'SQLite only' },
  async (t) => {
    const dir = tempDir(t)
    const server = spawnServer('backup-source', { dataDir: dir, port: await freePort() })
    t.teardown(() => stopServer(server))
    await untilHealthy(server)

    // Users, each with a secret message.
    const accounts: { email: string; token: string; message: string }[] = []
    for (let i = 0; i < 4; i++) {
      const email = uniqueEmail(`backup${i}`)
      const signup = await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))
      t.equal(signup.status, 201)
      const token = ((await signup.json()) as { accessToken: string }).accessToken
      const message = `the secret of user ${i}: ${'x'.repeat(i * 100)}`
      const created = await fetch(
        `${server.base}/secrets`,
        json({ title: `secret ${i}`, message }, { authorization: `Bearer ${token}` }),
      )
      t.equal(created.status, 201)
      accounts.push({ email, token, message })
    }

    // A write load: tasks created by 4 concurrent writers until the backup is done (bounded).
    const writer = accounts[0] as (typeof accounts)[number]
    let written = 0
    let stop = false
    const writes = Array.from({ length: 4 }, async (_, n) => {
      for (let i = 0; i < 2000 && !stop; i++) {
        const response = await fetch(
          `${server.base}/tasks`,
          json({ title: `task ${n}-${i}` }, { authorization: `Bearer ${writer.token}` }),
        )
        if (response.status === 201) written++
        else t.fail(`a write failed during the backup: ${response.status}`)
      }
    })
    while (written < 20) await new Promise((resolve) => setTimeout(resolve, 10))
    const writtenBefore = written
    const file = path.join(tempDir(t, 'latchkey-backups-'), 'latchkey-backup.db')
    const backup = await runCli(dir, ['backup', file])
    const writtenAfter = written
    stop = true
    await Promise.all(writes)
    t.equal(backup.status, 0, backup.stderr)
    t.match(backup.stdout, /^wrote .*latchkey-backup\.db \(\d+ bytes, checked with PRAGMA quick_check\)\n/)
    t.ok(
      writtenAfter > writtenBefore,
      `the server kept writing during the backup (${writtenAfter - writtenBefore} tasks)`,
    )
    t.equal(mode(file), 0o600, 'the copy is 0600')
    t.equal(mode(`${file}.secrets.json`), 0o600, 'the secrets file is 0600')
    t.same(
      JSON.parse(readFileSync(`${file}.secrets.json`, 'utf8')),
      JSON.parse(readFileSync(path.join(dir, 'secrets.json'), 'utf8')),
      'the secrets file holds the secrets the data depends on',
    )
    const again = await runCli(dir, ['backup', file])
    t.equal(again.status, 1, 'an existing file is never overwritten')
    t.match(again.stderr, /exists already/)
    const asJson = await runCli(dir, ['backup', `${file}.2`, '--json'])
    t.match(JSON.parse(asJson.stdout), { file: `${file}.2`, secretsFile: `${file}.2.secrets.json`, bytes: Number })

    // Restore: the README's block, word for word, in the checkout as an operator
    // would run it, with its two paths (the block's first lines) set to this
    // test's; the last line (serve) runs below as a process of its own.
    const restored = path.join(tempDir(t, 'latchkey-restore-'), 'data-restored')
    const steps = restoreProcedure()
      .split('\n')
      .filter((line) => !/^(BACKUP|NEW_DATA_DIR)=/.test(line) && !/ serve$/.test(line))
      .join('\n')
    t.match(steps, /dist\/latchkey\.cjs migrate/)
    const restore = spawnSync('bash', ['-euo', 'pipefail', '-c', steps], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ...TEST_ENV, LOG_LEVEL: 'warn', BACKUP: file, NEW_DATA_DIR: restored },
    })
    t.equal(restore.status, 0, `the README's restore steps: ${restore.stderr}`)
    t.equal(mode(restored), 0o700)
    t.equal(mode(path.join(restored, 'latchkey.db')), 0o600)
    t.equal(mode(path.join(restored, 'secrets.json')), 0o600)
    const check = new SQLite(path.join(restored, 'latchkey.db'), { readonly: true })
    t.equal(check.pragma('integrity_check', { simple: true }), 'ok', 'PRAGMA integrity_check')
    const tasks = (check.prepare('select count(*) as n from tasks').get() as { n: number }).n
    check.close()
    t.ok(tasks >= writtenBefore && tasks <= writtenAfter, `the copy holds the writes up to its moment (${tasks})`)

    const copy = spawnServer('backup-restored', { dataDir: restored, port: await freePort() })
    t.teardown(() => stopServer(copy))
    await untilHealthy(copy)
    for (const account of accounts) {
      const login = await fetch(`${copy.base}/auth/login`, json({ email: account.email, password: PASSWORD }))
      t.equal(login.status, 200, `${account.email} logs in on the restored copy`)
      const token = ((await login.json()) as { accessToken: string }).accessToken
      const secrets = await fetch(`${copy.base}/secrets`, { headers: { authorization: `Bearer ${token}` } })
      t.equal(secrets.status, 200)
      const items = ((await secrets.json()) as { items: { message: string }[] }).items
      t.same(
        items.map((item) => item.message),
        [account.message],
        'the secret message decrypts',
      )
    }
    const old = await fetch(`${copy.base}/users/me`, { headers: { authorization: `Bearer ${writer.token}` } })
    t.equal(old.status, 200, 'an access token of the original still verifies: the signing keys came along')
  },
)

t.test(
  'BACKUP_CRON: scheduled copies, the newest BACKUP_KEEP kept',
  { skip: onPostgres && 'SQLite only' },
  async (t) => {
    const dir = tempDir(t)
    const backups = path.join(dir, 'backups')
    const server = spawnServer('backup-cron', {
      dataDir: dir,
      port: await freePort(),
      env: { BACKUP_CRON: '* * * * * *', BACKUP_KEEP: '2', BACKUP_DIR: backups },
    })
    t.teardown(() => stopServer(server))
    await untilHealthy(server)
    const deadline = Date.now() + 15_000
    while ((server.output().match(/"backup done"/g) ?? []).length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.ok((server.output().match(/"backup done"/g) ?? []).length >= 3, 'three scheduled backups ran')
    await stopServer(server, 'SIGTERM')
    const files = readdirSync(backups).sort()
    const copies = files.filter((name) => name.endsWith('.db'))
    t.equal(copies.length, 2, `BACKUP_KEEP=2: ${files.join(', ')}`)
    t.same(
      files,
      copies.flatMap((name) => [name, `${name}.secrets.json`]).sort(),
      'each with its secrets file, nothing else',
    )
    t.equal(mode(backups), 0o700)
    for (const name of files) t.equal(mode(path.join(backups, name)), 0o600, `${name} is 0600`)
    for (const name of copies) {
      const copy = new SQLite(path.join(backups, name), { readonly: true })
      t.equal(copy.pragma('integrity_check', { simple: true }), 'ok', `${name}: integrity_check`)
      copy.close()
    }
  },
)

t.test('no backup with secrets that are not the database’s', { skip: onPostgres && 'SQLite only' }, async (t) => {
  const dir = tempDir(t)
  const migrate = spawnSync(process.execPath, [CLI, 'migrate'], { ...cli(dir), encoding: 'utf8' })
  t.equal(migrate.status, 0, migrate.stderr)
  rmSync(path.join(dir, 'secrets.json'))
  const result = await runCli(dir, ['backup', path.join(dir, 'copy.db')])
  t.equal(result.status, 1)
  t.match(result.stderr, /secrets\.json lacks JWT_SECRET, COOKIE_SECRET, DATA_ENCRYPTION_KEY/)
  t.notOk(existsSync(path.join(dir, 'copy.db')), 'no copy')
  t.notOk(existsSync(path.join(dir, 'secrets.json')), 'and no new secrets written either')
})
