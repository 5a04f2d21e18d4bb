// End to end, `npm run test:binary` (apart from `npm test`: the build takes a
// while and loads the machine): builds dist/latchkey, copies it alone into an
// empty directory and runs it with a clean environment whose PATH has no node.
// It serves, keeps its data across a restart, stops cleanly on SIGTERM, answers
// --version, fails on a bad configuration exactly as `node dist/latchkey.cjs`, and
// runs the scheduled session cleanup in its worker thread.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import t from 'tap'
import { buildBinary } from '../scripts/build-binary.js'
import { startNodeFlags } from '../scripts/start-node-flags.mjs'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { PASSWORD, sleep, TEST_ENV, tempDir } from './helper.js'

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
})
