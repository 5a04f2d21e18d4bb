// End to end: the built server's log lines on stdout (src/server.ts). They are
// written in batches, yet a SIGTERM loses none of them (every access line of a
// burst is there, `stopped` last), and at low traffic a line does not wait for
// a batch to fill.
import http from 'node:http'
import t, { type Test } from 'tap'
import { PASSWORD, sleep, tempDir, uniqueEmail } from '../helper.js'
import { freePort, json, type ServerProcess, spawnServer, untilHealthy } from './server-process.js'

interface LogLine {
  msg?: string
  url?: string
  statusCode?: number
}

function logLines(server: ServerProcess): LogLine[] {
  return server
    .output()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LogLine)
}

const accessLines = (server: ServerProcess, url: string) =>
  logLines(server).filter((line) => line.msg === 'request completed' && line.url === url)

async function startWithToken(t: Test): Promise<{ server: ServerProcess; port: number; token: string }> {
  const dataDir = tempDir(t)
  const port = await freePort()
  const server = spawnServer('logging', { dataDir, port })
  t.teardown(() => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL')
  })
  await untilHealthy(server)
  const signup = await fetch(`${server.base}/auth/signup`, json({ email: uniqueEmail('logging'), password: PASSWORD }))
  t.equal(signup.status, 201)
  const { accessToken } = (await signup.json()) as { accessToken: string }
  return { server, port, token: accessToken }
}

/** GET /users/me `count` times over `connections` keep-alive connections; resolves the statuses. */
async function burst(port: number, token: string, count: number, connections: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const one = () =>
    new Promise<number>((resolve, reject) => {
      http
        .get(
          { host: '127.0.0.1', port, path: '/users/me', agent, headers: { authorization: `Bearer ${token}` } },
          (res) => {
            res.resume()
            res.on('end', () => resolve(res.statusCode ?? 0))
          },
        )
        .on('error', reject)
    })
  try {
    return await Promise.all(Array.from({ length: count }, one))
  } finally {
    agent.destroy()
  }
}

t.test('SIGTERM right after a burst: every access line is written, and `stopped` last', async (t) => {
  const { server, port, token } = await startWithToken(t)
  const statuses = await burst(port, token, 600, 10)
  t.same(
    statuses.filter((status) => status !== 200),
    [],
    'every request answered 200',
  )
  // At once: the last lines are still queued for a batch (about 200 bytes each, 4 KiB a batch).
  server.child.kill('SIGTERM')
  t.same(await server.exit, { code: 0, signal: null }, 'exit 0')
  const lines = accessLines(server, '/users/me')
  t.equal(lines.length, 600, 'one access line per request')
  t.ok(
    lines.every((line) => line.statusCode === 200),
    'each with its status',
  )
  t.equal(logLines(server).at(-1)?.msg, 'stopped', 'the last line says stopped')
})

t.test('at low traffic a line is written within a fraction of a second, not when a batch fills', async (t) => {
  const { server, port, token } = await startWithToken(t)
  await sleep(500) // the sign-up's lines are out
  const before = accessLines(server, '/users/me').length
  const sent = Date.now()
  t.same(await burst(port, token, 1, 1), [200])
  while (accessLines(server, '/users/me').length === before && Date.now() - sent < 5000) await sleep(10)
  const waited = Date.now() - sent
  t.equal(accessLines(server, '/users/me').length, before + 1, 'the line is there')
  t.ok(waited < 1500, `within 1.5 s (${waited} ms)`)
})
