// End to end, `npm run test:binary` (apart from `npm test`: the build takes a
// while and loads the machine): builds dist/latchkey, copies it alone into an
// empty directory and runs it with a clean environment whose PATH has no node.
// It serves, keeps its data across a restart, stops cleanly on SIGTERM, answers
// --help and --version without touching a file, fails on a bad configuration
// exactly as `node dist/latchkey.cjs`, names the directory and the variable when
// it cannot write its cache, runs the scheduled session cleanup in its worker
// thread, and (as root) never loads the addon of another local user who races it.
import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { buildBinary } from '../scripts/build-binary.js'
import { startNodeFlags } from '../scripts/start-node-flags.mjs'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { PASSWORD, sleep, TEST_ENV, TEST_SECRETS, tempDir } from './helper.js'

const ROOT = path.resolve(import.meta.dirname, '..')
const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

interface Running {
  child: ChildProcess
  url: string
  /** Process start to the first 200 on /health. */
  coldStartMs: number
  output: () => string
}

/** Starts `command` and waits for its first 200 on /health. */
async function start(command: string, args: string[], cwd: string, env: Record<string, string>): Promise<Running> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  let output = ''
  const started = performance.now()
  const child = spawn(command, args, { cwd, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.on('data', (chunk) => (output += chunk))
  child.stderr?.on('data', (chunk) => (output += chunk))
  while (performance.now() - started < 60_000) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before serving:\n${output}`)
    const response = await fetch(`${url}/health`).catch(() => undefined)
    if (response?.status === 200) {
      return { child, url, coldStartMs: performance.now() - started, output: () => output }
    }
    await sleep(5)
  }
  child.kill('SIGKILL')
  throw new Error(`no answer on /health within 60 s:\n${output}`)
}

function stop(running: Running): Promise<number | null> {
  return new Promise((resolve) => {
    running.child.once('exit', (code) => resolve(code))
    running.child.kill('SIGTERM')
  })
}

/** name -> value of the cookies a response sets. */
const cookiesOf = (response: Response): Record<string, string> =>
  Object.fromEntries(
    response.headers.getSetCookie().map((cookie) => {
      const [pair = ''] = cookie.split(';')
      const index = pair.indexOf('=')
      return [pair.slice(0, index), pair.slice(index + 1)]
    }),
  )

async function call(url: string, method: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  return { response, status: response.status, text, json: () => JSON.parse(text) }
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

/** The absolute path of a command on this machine's PATH, if there is one. */
const which = (command: string): string | undefined =>
  spawnSync('/bin/sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).stdout.trim() || undefined

const isRoot = process.getuid?.() === 0
/** Runs a command as the user nobody (from root, with setpriv). */
const asNobody = (command: string, args: string[]): [string, string[]] => [
  which('setpriv') ?? '/usr/bin/setpriv',
  ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', command, ...args],
]

/** Every path the files of a directory tree, relative to it, sorted. */
const treeOf = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((entry) => entry.split(path.sep).join('/'))
    .sort()

/**
 * Calls that create, change or remove a file, as strace -e trace=%file prints
 * them (tried or done): the side effects that `--help` must not have.
 */
const WRITING_CALL =
  /^\d+ +(mkdir|mkdirat|rmdir|rename|renameat2?|unlink|unlinkat|symlink|symlinkat|link|linkat|chmod|fchmodat|chown|fchownat|lchown|truncate|creat|mknod|mknodat)\(|O_CREAT|O_WRONLY|O_RDWR|O_TRUNC/

/**
 * The attacker, run as nobody: a node script that, as fast as it can, swaps
 * what the binary's cache path names (`mode` link: a symbolic link in sticky
 * /tmp, pointed in turn at the binary's own cache, which passes any check made
 * through it, and at the attacker's; `mode` rename: the cache directory in a
 * directory of the attacker's, moved aside for the attacker's and back). The
 * attacker's "addons" are not even ELF files: if the binary ever loads one, its
 * start fails with dlopen's "invalid ELF header".
 */
const ATTACKER = `
import { mkdirSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
const { mode, target, genuine, evil, aside, addons, ready } = JSON.parse(process.argv[2])
if (mode === 'rename') mkdirSync(path.dirname(target), { mode: 0o755 })
for (const file of addons) {
  mkdirSync(path.dirname(path.join(evil, file)), { recursive: true })
  writeFileSync(path.join(evil, file), 'this is the attacker addon, which the binary must never load\\n'.repeat(4))
}
writeFileSync(ready, '')
const attempt = (change) => {
  try {
    change()
  } catch {}
}
for (;;) {
  if (mode === 'link') {
    for (const to of [genuine, evil]) {
      attempt(() => unlinkSync(target + '.new'))
      attempt(() => symlinkSync(to, target + '.new'))
      attempt(() => renameSync(target + '.new', target))
    }
  } else {
    attempt(() => renameSync(target, aside))
    attempt(() => renameSync(evil, target))
    attempt(() => renameSync(target, evil))
    attempt(() => renameSync(aside, target))
  }
}
`

t.test('the single binary', async (t) => {
  const build = await buildBinary({ log: (line) => t.comment(line) })
  const dir = tempDir(t, 'latchkey-binary-')
  const binary = path.join(dir, 'latchkey')
  copyFileSync(build.file, binary)
  // PATH is an empty folder: the binary needs no tool, and certainly no node.
  const bin = path.join(dir, 'bin')
  mkdirSync(bin)
  const dataDir = path.join(dir, 'data')
  const env: Record<string, string> = {
    PATH: bin,
    HOME: dir,
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    COOKIE_SECURE: 'false',
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    LOG_LEVEL: 'warn',
  }
  t.not(spawnSync('/bin/sh', ['-c', 'command -v node'], { env }).status, 0, 'no node on PATH')
  t.same(readdirSync(dir).sort(), ['bin', 'latchkey'], 'the binary is alone')

  await t.test('--version prints the package version', async (t) => {
    const result = spawnSync(binary, ['--version'], { cwd: dir, env, encoding: 'utf8' })
    t.equal(result.status, 0, 'exits 0', { stderr: result.stderr })
    t.equal(result.stdout, `${version}\n`, `prints ${version}`)
  })

  // A directory every user can reach, for what runs as nobody.
  const open = mkdtempSync(path.join(tmpdir(), 'latchkey-binary-open-'))
  t.teardown(() => rmSync(open, { recursive: true, force: true }))
  chmodSync(open, 0o755)
  const openBinary = path.join(open, 'latchkey')
  copyFileSync(binary, openBinary)
  chmodSync(openBinary, 0o755)

  await t.test('--help and --version touch no file, with no HOME and a read-only working directory', async (t) => {
    const readOnly = path.join(open, 'read-only')
    mkdirSync(readOnly)
    chmodSync(readOnly, 0o555)
    // Nothing but PATH: no HOME, no DATA_DIR, no cache directory, so the
    // default of each would be under the working directory.
    const bare = { PATH: bin }
    const strace = which('strace')
    const runs: { args: string[]; env: Record<string, string>; status: number; stdout: RegExp }[] = [
      { args: ['--help'], env: bare, status: 0, stdout: /^latchkey [^\n]*\n[\s\S]*Usage: latchkey \[command\]/ },
      { args: ['-h'], env: bare, status: 0, stdout: /^latchkey / },
      { args: ['--version'], env: bare, status: 0, stdout: new RegExp(`^${version.replaceAll('.', '\\.')}\n$`) },
      { args: ['-v'], env: bare, status: 0, stdout: new RegExp(`^${version.replaceAll('.', '\\.')}\n$`) },
      { args: ['serve', '--bogus'], env: bare, status: 2, stdout: /^$/ },
      { args: ['migrate'], env: { ...bare, PORT: 'abc' }, status: 1, stdout: /^$/ },
    ]
    for (const run of runs) {
      const name = `${run.args.join(' ')}${run.env.PORT ? ` (PORT=${run.env.PORT})` : ''}`
      const users: [string, string, string[]][] = [['this user', binary, run.args]]
      // Root may write anywhere: as nobody, the directory is read-only indeed.
      if (isRoot) users.push(['nobody', ...asNobody(openBinary, run.args)])
      for (const [user, command, args] of users) {
        const result = spawnSync(command, args, { cwd: readOnly, env: run.env, encoding: 'utf8' })
        t.equal(result.status, run.status, `${name}, as ${user}: exit ${run.status}`, { stderr: result.stderr })
        t.match(result.stdout, run.stdout, `${name}, as ${user}: its output`)
        if (run.status === 0) t.equal(result.stderr, '', `${name}, as ${user}: nothing on stderr`)
      }
      if (strace) {
        const trace = path.join(dir, 'strace.txt')
        spawnSync(strace, ['-f', '-qq', '-e', 'trace=%file', '-o', trace, binary, ...run.args], {
          cwd: readOnly,
          env: run.env,
        })
        const writes = readFileSync(trace, 'utf8')
          .split('\n')
          .filter((line) => WRITING_CALL.test(line))
        rmSync(trace)
        t.same(writes, [], `${name}: no call that creates, changes or removes a file, even one that fails (strace)`)
      }
    }
    if (!strace) t.comment('strace is not installed: the system calls were not traced')
    t.same(treeOf(readOnly), [], 'nothing was created in the working directory')
    t.same(treeOf(open), ['latchkey', 'read-only'], 'nor beside it')
  })

  await t.test('an unwritable data or cache directory is named, with the variable to set', async (t) => {
    // Root writes anywhere, so as root the binary runs as nobody; another user
    // runs it as themselves on a directory made read-only.
    const locked = path.join(open, 'locked')
    const dataDir = path.join(locked, 'data')
    mkdirSync(dataDir, { recursive: true, mode: 0o755 })
    if (!isRoot) {
      for (const lockedDir of [dataDir, locked]) chmodSync(lockedDir, 0o555)
      t.teardown(() => {
        for (const lockedDir of [locked, dataDir]) chmodSync(lockedDir, 0o755)
      })
    }
    const run = (extra: Record<string, string>) => {
      // `serve`, whose modules need the addons before the database is opened.
      const [command, args] = isRoot ? asNobody(openBinary, ['serve']) : [binary, ['serve']]
      // Secrets given, so that the configuration writes nothing: the binary's own files come first.
      const result = spawnSync(command, args, {
        cwd: open,
        env: { PATH: bin, ...TEST_SECRETS, ...TEST_ENV, HOST: '127.0.0.1', PORT: '0', ...extra },
        encoding: 'utf8',
        timeout: 30_000,
      })
      return { status: result.status, stderr: result.stderr }
    }
    const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

    const fromData = run({ DATA_DIR: dataDir })
    t.equal(fromData.status, 1, 'DATA_DIR: exits 1')
    t.match(
      fromData.stderr,
      new RegExp(
        `^latchkey: cannot unpack the native addons into ${literal(dataDir)}/cache, in DATA_DIR \\(${literal(dataDir)}\\) .*EACCES.*; set DATA_DIR, or LATCHKEY_NATIVE_CACHE_DIR for the addons alone, to a directory this user can write and no other user can change\n$`,
      ),
      'DATA_DIR: one line naming the directory, the error and the variables',
    )

    const cacheDir = path.join(locked, 'cache')
    const fromVariable = run({ DATA_DIR: dataDir, LATCHKEY_NATIVE_CACHE_DIR: cacheDir })
    t.equal(fromVariable.status, 1, 'LATCHKEY_NATIVE_CACHE_DIR: exits 1')
    t.match(
      fromVariable.stderr,
      new RegExp(
        `^latchkey: cannot unpack the native addons into ${literal(cacheDir)} \\(from LATCHKEY_NATIVE_CACHE_DIR\\): .*EACCES.*; set LATCHKEY_NATIVE_CACHE_DIR to a directory this user can write and no other user can change\n$`,
      ),
      'LATCHKEY_NATIVE_CACHE_DIR: one line naming the directory, the error and the variable',
    )

    const shared = path.join(open, 'shared')
    mkdirSync(shared)
    chmodSync(shared, 0o777)
    const unsafe = run({ DATA_DIR: dataDir, LATCHKEY_NATIVE_CACHE_DIR: path.join(shared, 'cache') })
    t.equal(unsafe.status, 1, 'a cache under a directory others can write: exits 1')
    t.match(
      unsafe.stderr,
      new RegExp(`^latchkey: cannot unpack .* ${literal(shared)} is writable by other users \\(mode 0777\\); set `),
      'naming the directory that is not safe',
    )
    t.notOk(existsSync(path.join(shared, 'cache')), 'and creating nothing under it')
  })

  await t.test('a bad configuration fails as with node dist/latchkey.cjs', async (t) => {
    const cli = path.join(ROOT, 'dist', 'latchkey.cjs')
    t.ok(existsSync(cli), 'dist/latchkey.cjs is built (npm run build)')
    const bad = { ...env, PORT: '99999' }
    const fromBinary = spawnSync(binary, [], { cwd: dir, env: bad, encoding: 'utf8' })
    const fromNode = spawnSync(process.execPath, [cli], { cwd: dir, env: bad, encoding: 'utf8' })
    t.not(fromBinary.status, 0, 'exits non-zero')
    t.equal(fromBinary.status, fromNode.status, 'same exit code')
    t.match(fromBinary.stderr, /^latchkey: invalid configuration: PORT: .*\n$/, 'one line naming PORT')
    t.equal(fromBinary.stderr, fromNode.stderr, 'same one-line message')
  })

  await t.test('serves, stops on SIGTERM and keeps its data across a restart', async (t) => {
    const first = await start(binary, [], dir, env)
    t.teardown(() => first.child.kill('SIGKILL'))
    const email = `binary-${process.pid}@example.com`
    const signup = await call(`${first.url}/auth/signup`, 'POST', { email, password: PASSWORD })
    t.equal(signup.status, 201, 'signs up', { body: signup.text })
    const login = await call(`${first.url}/auth/login`, 'POST', { email, password: PASSWORD })
    t.equal(login.status, 200, 'logs in', { body: login.text })
    const { accessToken } = login.json() as { accessToken: string }
    const bearer = { authorization: `Bearer ${accessToken}` }
    const refresh = await call(`${first.url}/auth/refresh`, 'POST', undefined, {
      cookie: `refresh_token=${cookiesOf(login.response).refresh_token}`,
    })
    t.equal(refresh.status, 200, 'refreshes with the refresh_token cookie', { body: refresh.text })
    t.type(refresh.json().accessToken, 'string', 'refresh issues an access token')

    const task = await call(`${first.url}/tasks`, 'POST', { title: 'ship the binary' }, bearer)
    t.equal(task.status, 201, 'creates a task', { body: task.text })
    const secret = await call(`${first.url}/secrets`, 'POST', { message: 'kept in the binary' }, bearer)
    t.equal(secret.status, 201, 'creates a secret', { body: secret.text })

    const page = await call(`${first.url}/`, 'GET')
    t.equal(page.status, 200, 'the account page is served')
    t.match(page.response.headers.get('content-type'), /text\/html/, 'as HTML')
    const docsAsset = await call(`${first.url}/docs/static/swagger-ui.css`, 'GET')
    t.equal(docsAsset.status, 200, "Swagger UI's assets are served")

    // The binary's routes, as its OpenAPI document lists them, equal the app's.
    const normal = await buildApp(loadConfig({ env: { ...TEST_ENV, DATA_DIR: path.join(dir, 'inprocess') }, cwd: dir }))
    t.teardown(() => normal.close())
    const openapi = await call(`${first.url}/openapi.json`, 'GET')
    t.same(openapi.json(), (await normal.inject('/openapi.json')).json(), 'same OpenAPI document as the app')

    t.equal(await stop(first), 0, 'exits 0 on SIGTERM', { output: first.output() })

    const second = await start(binary, [], dir, env)
    t.teardown(() => second.child.kill('SIGKILL'))
    const me = await call(`${second.url}/users/me`, 'GET', undefined, bearer)
    t.equal(me.status, 200, 'the old access token is still valid', { body: me.text })
    t.equal(me.json().user.email, email, 'the user is still there')
    const tasks = await call(`${second.url}/tasks`, 'GET', undefined, bearer)
    t.equal(tasks.status, 200, 'lists tasks', { body: tasks.text })
    t.ok(
      (tasks.json().items as { id: string }[]).some((item) => item.id === task.json().task.id),
      'the task is still there',
    )
    const kept = await call(`${second.url}/secrets/${secret.json().secret.id}`, 'GET', undefined, bearer)
    t.equal(kept.status, 200, 'reads the secret', { body: kept.text })
    t.equal(kept.json().secret.message, 'kept in the binary', 'the secret is still there')
    t.equal(await stop(second), 0, 'exits 0 on SIGTERM again', { output: second.output() })

    const cacheDir = path.join(dir, '.cache', 'latchkey')
    t.equal(statSync(cacheDir).mode & 0o777, 0o700, 'the native cache directory is private')
    t.equal(readdirSync(cacheDir).length, 1, 'one unpacked set of files')

    // For comparison, the same app from dist/ with node.
    const node = await start(process.execPath, [...startNodeFlags(), path.join(ROOT, 'dist', 'latchkey.cjs')], dir, {
      ...env,
      DATA_DIR: path.join(dir, 'node-data'),
    })
    await stop(node)
    t.comment(
      `binary ${mib(build.bytes)} (bundle ${mib(build.bundleBytes)}, embedded files ${mib(build.embeddedBytes)}); ` +
        `cold start to the first 200 on /health: ${first.coldStartMs.toFixed(0)} ms on the first run (unpacking), ` +
        `${second.coldStartMs.toFixed(0)} ms after; node dist/latchkey.cjs: ${node.coldStartMs.toFixed(0)} ms`,
    )
  })

  await t.test('the scheduled cleanup runs in its worker thread and deletes a revoked session', async (t) => {
    const cleanupDataDir = path.join(dir, 'cleanup-data')
    const running = await start(binary, [], dir, {
      ...env,
      DATA_DIR: cleanupDataDir,
      LOG_LEVEL: 'info',
      CLEANUP_CRON: '* * * * * *',
    })
    t.teardown(() => running.child.kill('SIGKILL'))
    const email = `binary-cleanup-${process.pid}@example.com`
    const signup = await call(`${running.url}/auth/signup`, 'POST', { email, password: PASSWORD })
    t.equal(signup.status, 201, 'signs up', { body: signup.text })
    const login = await call(`${running.url}/auth/login`, 'POST', { email, password: PASSWORD })
    t.equal(login.status, 200, 'logs in again', { body: login.text })
    const logout = await call(`${running.url}/auth/logout`, 'POST', undefined, {
      authorization: `Bearer ${login.json().accessToken}`,
    })
    t.equal(logout.status, 204, 'logs that session out', { body: logout.text })

    // Each run logs one line; wait for one that deleted the revoked session.
    const runs = () =>
      running
        .output()
        .split('\n')
        .slice(0, -1) // whole lines only
        .filter((line) => line.includes('"session cleanup'))
        .map((line) => JSON.parse(line) as { msg: string; deleted?: number })
    const started = Date.now()
    while (!runs().some((run) => run.msg === 'session cleanup done' && run.deleted === 1)) {
      if (Date.now() - started > 30_000 || runs().some((run) => run.msg === 'session cleanup failed')) break
      await sleep(50)
    }
    t.ok(
      runs().some((run) => run.msg === 'session cleanup done' && run.deleted === 1),
      'a run deleted the revoked session',
      { output: running.output() },
    )
    t.notOk(
      runs().some((run) => run.msg === 'session cleanup failed'),
      'no run failed',
    )
    const db = new SQLite(path.join(cleanupDataDir, 'latchkey.db'), { readonly: true })
    const sessions = db.prepare('select revoked_at from sessions').all()
    db.close()
    t.same(sessions, [{ revoked_at: null }], 'only the live session is left')
    const me = await call(`${running.url}/users/me`, 'GET', undefined, {
      authorization: `Bearer ${signup.json().accessToken}`,
    })
    t.equal(me.status, 200, 'the live session still works', { body: me.text })
    t.equal(await stop(running), 0, 'exits 0 on SIGTERM, a cleanup worker perhaps running', {
      output: running.output(),
    })
  })

  await t.test(
    'another local user racing the binary never gets their addon loaded',
    {
      skip: !isRoot
        ? 'needs root, to run the attacker as another user (nobody)'
        : (lstatSync(tmpdir()).mode & 0o1002) !== 0o1002
          ? `${tmpdir()} is not a world-writable sticky directory`
          : false,
    },
    async (t) => {
      // nobody runs the attacker with this node, or with a copy it can reach.
      let node = process.execPath
      const [probe, probeArgs] = asNobody(node, ['-e', '0'])
      if (spawnSync(probe, probeArgs).status !== 0) {
        node = path.join(open, 'node')
        copyFileSync(process.execPath, node)
        chmodSync(node, 0o755)
      }
      const attacker = path.join(open, 'attacker.mjs')
      writeFileSync(attacker, ATTACKER, { mode: 0o644 })

      // The binary's own cache, in a directory only root can enter, for the
      // attacker to point at: through it, every check of the old binary passed.
      const raceData = path.join(dir, 'race-data')
      const genuine = path.join(dir, 'genuine-cache')
      const raceEnv = { ...env, DATA_DIR: raceData, LATCHKEY_NATIVE_CACHE_DIR: genuine }
      const primed = spawnSync(binary, ['migrate'], { cwd: dir, env: raceEnv, encoding: 'utf8' })
      t.equal(primed.status, 0, 'the binary unpacks its own cache', { stderr: primed.stderr })
      const [id = ''] = readdirSync(genuine)
      const addons = treeOf(path.join(genuine, id))
        .filter((file) => file.endsWith('.node'))
        .map((file) => `${id}/${file}`)
      t.equal(addons.length, 2, 'two addons to replace')

      const STARTS = 30
      const base = path.join(tmpdir(), `latchkey-race-${process.pid}`)
      const scenarios = [
        { mode: 'link', target: `${base}-cache`, evil: `${base}-evil`, aside: '' },
        { mode: 'rename', target: `${base}-theirs/cache`, evil: `${base}-theirs/evil`, aside: `${base}-theirs/aside` },
      ]
      for (const scenario of scenarios) {
        await t.test(`the cache path ${scenario.target}: ${scenario.mode} swaps`, async (t) => {
          const ready = `${base}-${scenario.mode}-ready`
          const cleanUp = () => {
            for (const file of [scenario.target, `${scenario.target}.new`, scenario.evil, `${base}-theirs`, ready]) {
              rmSync(file, { recursive: true, force: true })
            }
          }
          cleanUp()
          t.teardown(cleanUp)
          const [command, args] = asNobody(node, [attacker, JSON.stringify({ ...scenario, genuine, addons, ready })])
          const attack = spawn(command, args, { cwd: open, stdio: ['ignore', 'ignore', 'pipe'] })
          let attackerErrors = ''
          attack.stderr?.on('data', (chunk) => (attackerErrors += chunk))
          t.teardown(() => attack.kill('SIGKILL'))
          while (!existsSync(ready)) {
            if (attack.exitCode !== null) break
            await sleep(10)
          }
          t.ok(existsSync(ready), 'the attacker is at work', { stderr: attackerErrors })

          const results: SpawnSyncReturns<string>[] = []
          for (let start = 0; start < STARTS; start++) {
            // A directory the binary made itself is the attacker's dead end (the
            // binary wins): remove it so that every start is raced again.
            const stat = lstatSync(scenario.target, { throwIfNoEntry: false })
            if (scenario.mode === 'link' && stat?.isDirectory()) rmSync(scenario.target, { recursive: true })
            results.push(
              spawnSync(binary, ['migrate'], {
                cwd: dir,
                env: { ...raceEnv, LATCHKEY_NATIVE_CACHE_DIR: scenario.target },
                encoding: 'utf8',
                timeout: 60_000,
              }),
            )
          }
          t.equal(attack.exitCode, null, 'the attacker kept at it to the end', { stderr: attackerErrors })

          const loadedTheirs = results.filter((result) =>
            /attacker|invalid ELF header|file too short/.test(result.stderr),
          )
          t.same(
            loadedTheirs.map((result) => result.stderr),
            [],
            "the attacker's addon was never loaded",
          )
          const refusal =
            /^latchkey: cannot unpack the native addons into \S+ \(from LATCHKEY_NATIVE_CACHE_DIR\): \S+ (is a symbolic link|belongs to another user)/
          const refused = results.filter((result) => result.status === 1 && refusal.test(result.stderr))
          const ran = results.filter((result) => result.status === 0)
          t.same(
            results.filter((result) => !refused.includes(result) && !ran.includes(result)).map((r) => r.stderr),
            [],
            'every start ran on its own verified files or refused the path with a clear error',
          )
          if (scenario.mode === 'rename') {
            t.equal(refused.length, STARTS, "a cache in another user's directory is always refused")
            t.match(refused[0]?.stderr, `${base}-theirs belongs to another user (uid 65534`, 'naming that directory')
          } else {
            t.ok(refused.length > 0, "some starts met the attacker's link, and refused it")
          }
          t.comment(`${scenario.mode}: ${ran.length} of ${STARTS} starts ran, ${refused.length} refused the path`)
        })
      }
    },
  )
})
