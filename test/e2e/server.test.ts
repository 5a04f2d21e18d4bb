// End to end: the real server process started the way `npm start` starts it
// (the built JS), on a temporary DATA_DIR, driven with fetch. Restarts keep
// tokens valid; writes acknowledged before `kill -9` survive it.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import t from 'tap'
import { PASSWORD, TEST_ENV, tempDir, uniqueEmail } from '../helper.js'

const CLI = path.resolve(import.meta.dirname, '../../dist/latchkey.cjs')

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

interface Running {
  child: ChildProcess
  base: string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  output: () => string
}

async function start(dataDir: string, env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort()
  const child = spawn(process.execPath, [CLI, 'serve'], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH,
      ...TEST_ENV,
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (chunk) => {
    output += chunk
  })
  child.stderr?.on('data', (chunk) => {
    output += chunk
  })
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) break
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { child, base, exit, output: () => output }
}

const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
})

/** "name=value" pairs of the Set-Cookie headers, for a Cookie header. */
const cookieJar = (response: Response) =>
  response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(';')[0])
    .filter((pair) => pair && !pair.endsWith('='))
    .join('; ')

t.test('the CLI: --version, --help, a bad configuration', async (t) => {
  const version = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' })
  t.equal(version.status, 0)
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
  const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' })
  t.equal(help.status, 0)
  t.match(help.stdout, /serve[\s\S]*migrate[\s\S]*cleanup/)
  const dir = tempDir(t)
  for (const [variable, value] of [
    ['PORT', '99999'],
    ['JWT_ACCESS_TOKEN_DURATION', 'forever'],
    ['JWT_SECRET', 'too-short'],
  ]) {
    const bad = spawnSync(process.execPath, [CLI, 'serve'], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, DATA_DIR: dir, [variable as string]: value },
    })
    t.equal(bad.status, 1, `${variable}: exits 1`)
    t.match(
      bad.stderr,
      new RegExp(`^latchkey: invalid configuration: ${variable}: .+\\n$`),
      `${variable}: one clear line`,
    )
    t.notMatch(bad.stderr, /\n.+\n/, 'only one line')
  }
  const unknown = spawnSync(process.execPath, [CLI, 'frobnicate'], {
    encoding: 'utf8',
    cwd: dir,
    env: { PATH: process.env.PATH },
  })
  t.equal(unknown.status, 2)
})

t.test('migrate and cleanup run once and exit', async (t) => {
  const dir = tempDir(t)
  const env = { PATH: process.env.PATH, DATA_DIR: dir, ...TEST_ENV }
  const migrate = spawnSync(process.execPath, [CLI, 'migrate'], { cwd: dir, encoding: 'utf8', env })
  t.equal(migrate.status, 0, migrate.stderr)
  t.match(migrate.stdout, /applied: 2026-11-22T1700-initial/)
  const again = spawnSync(process.execPath, [CLI, 'migrate'], { cwd: dir, encoding: 'utf8', env })
  t.match(again.stdout, /up to date/)
  const cleanup = spawnSync(process.execPath, [CLI, 'cleanup'], { cwd: dir, encoding: 'utf8', env })
  t.equal(cleanup.status, 0, cleanup.stderr)
  t.match(cleanup.stdout, /deleted 0 /)
})

t.test('restart: data and tokens survive; SIGTERM exits 0', async (t) => {
  const dir = tempDir(t)
  const first = await start(dir)
  const signup = await fetch(`${first.base}/auth/signup`, json({ email: uniqueEmail(), password: PASSWORD }))
  t.equal(signup.status, 201)
  const { accessToken } = (await signup.json()) as { accessToken: string }
  const cookies = cookieJar(signup)
  t.equal(statSync(path.join(dir, 'secrets.json')).mode & 0o777, 0o600, 'generated secrets are private')
  first.child.kill('SIGTERM')
  t.same(await first.exit, { code: 0, signal: null }, 'clean exit on SIGTERM')

  const second = await start(dir)
  t.teardown(() => second.child.kill('SIGKILL'))
  const me = await fetch(`${second.base}/users/me`, { headers: { authorization: `Bearer ${accessToken}` } })
  t.equal(me.status, 200, 'the access token is still valid after a restart')
  const byCookie = await fetch(`${second.base}/users/me`, { headers: { cookie: cookies } })
  t.equal(byCookie.status, 200, 'so is the signed cookie')
  const refresh = await fetch(`${second.base}/auth/refresh`, { method: 'POST', headers: { cookie: cookies } })
  t.equal(refresh.status, 200, 'and the refresh token')
  second.child.kill('SIGINT')
  t.same(await second.exit, { code: 0, signal: null }, 'clean exit on SIGINT')
})

t.test('SIGTERM lets in-flight requests finish', async (t) => {
  const dir = tempDir(t)
  // Slow hashing, so the login is surely in flight when the signal arrives.
  const server = await start(dir, { ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '4' })
  const email = uniqueEmail()
  const signup = await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))
  t.equal(signup.status, 201)
  const inFlight = fetch(`${server.base}/auth/login`, json({ email, password: PASSWORD }))
  await new Promise((resolve) => setTimeout(resolve, 20))
  server.child.kill('SIGTERM')
  const response = await inFlight
  t.equal(response.status, 200, 'the in-flight login completed')
  t.same(await server.exit, { code: 0, signal: null })
})

t.test('kill -9 during writes: every acknowledged write is there after restart', async (t) => {
  const dir = tempDir(t)
  const server = await start(dir)
  const acknowledged: string[] = []
  let stop = false
  const writer = async () => {
    for (let i = 0; i < 500 && !stop; i++) {
      const email = uniqueEmail('durable')
      try {
        const response = await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))
        if (response.status === 201) acknowledged.push(email)
      } catch {
        return // the server died mid-request: not acknowledged
      }
    }
  }
  const writers = Array.from({ length: 6 }, writer)
  while (acknowledged.length < 40) await new Promise((resolve) => setTimeout(resolve, 5))
  server.child.kill('SIGKILL')
  stop = true
  await Promise.all(writers)
  t.same((await server.exit).signal, 'SIGKILL')
  t.ok(acknowledged.length >= 40, `${acknowledged.length} writes acknowledged before the kill`)

  const restarted = await start(dir)
  t.teardown(() => restarted.child.kill('SIGKILL'))
  let present = 0
  for (const email of acknowledged) {
    const login = await fetch(`${restarted.base}/auth/login`, json({ email, password: PASSWORD }))
    if (login.status === 200) present++
  }
  t.equal(present, acknowledged.length, 'no acknowledged sign-up was lost')
})

t.test('the bundle finds its files and runs the scheduled cleanup in its worker thread', async (t) => {
  const dir = tempDir(t)
  const server = await start(dir, { CLEANUP_CRON: '* * * * * *' })
  t.teardown(() => server.child.kill('SIGKILL'))
  // Files read from the repository at run time: public/, Swagger UI's assets, package.json.
  const page = await fetch(`${server.base}/`)
  t.equal(page.status, 200, 'serves the account page')
  t.match(await page.text(), /<html/i)
  const css = await fetch(`${server.base}/docs/static/swagger-ui.css`)
  t.equal(css.status, 200, "serves Swagger UI's assets")
  const spec = (await (await fetch(`${server.base}/openapi.json`)).json()) as { info: { version: string } }
  const { version } = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8'))
  t.equal(spec.info.version, version, "the OpenAPI document carries package.json's version")

  const email = uniqueEmail('cleanup')
  t.equal((await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))).status, 201)
  const login = await fetch(`${server.base}/auth/login`, json({ email, password: PASSWORD }))
  const { accessToken } = (await login.json()) as { accessToken: string }
  const logout = await fetch(`${server.base}/auth/logout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}` },
  })
  t.equal(logout.status, 204, 'logs one session out')
  // Each run logs one line; wait for one that deleted the revoked session.
  const runs = () =>
    server
      .output()
      .split('\n')
      .slice(0, -1) // whole lines only
      .filter((line) => line.includes('"session cleanup'))
      .map((line) => JSON.parse(line) as { msg: string; deleted?: number })
  const deleted = () => runs().some((run) => run.msg === 'session cleanup done' && run.deleted === 1)
  const failed = () => runs().some((run) => run.msg === 'session cleanup failed')
  const deadline = Date.now() + 30_000
  while (!deleted() && !failed() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(deleted(), 'a run in the worker deleted the revoked session', { output: server.output() })
  t.notOk(failed(), 'no run failed')
})
