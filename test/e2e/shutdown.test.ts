// End to end: SIGTERM on the built server (dist/latchkey.cjs) under load. Every
// request already sent, on a keep-alive connection or still in the kernel's
// accept queue, is answered (2xx, or 503 SHUTTING_DOWN with Connection: close),
// never reset; in-flight requests finish; the last log line says `stopped` and
// the process exits 0.
import http from 'node:http'
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { PASSWORD, sleep, tempDir, uniqueEmail } from '../helper.js'
import { freePort, json, type ServerProcess, spawnServer, untilHealthy } from './server-process.js'

interface Answer {
  status: number
  headers: Record<string, string>
  body: string
}

/** One raw HTTP/1.1 connection: write requests, read answers one by one (framed by Content-Length). */
class Connection {
  readonly socket: Socket
  #buffer = Buffer.alloc(0)
  #waiting: (() => void) | undefined
  /** The error that ended the connection (ECONNRESET...), if one did. */
  error: NodeJS.ErrnoException | undefined
  ended = false

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.on('data', (data: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, data])
      this.#waiting?.()
    })
    this.socket.on('error', (error) => {
      this.error = error
      this.#waiting?.()
    })
    this.socket.on('close', () => {
      this.ended = true
      this.#waiting?.()
    })
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
  }

  send(path: string, token: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`)
  }

  /** The next complete answer; throws with what happened instead (a reset, a close without an answer). */
  async answer(timeoutMs = 20_000): Promise<Answer> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const text = this.#buffer.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end !== -1) {
        const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
        const headers: Record<string, string> = {}
        for (const line of lines) {
          const colon = line.indexOf(':')
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
        }
        const length = Number(headers['content-length'] ?? 0)
        if (this.#buffer.length >= end + 4 + length) {
          const body = this.#buffer.subarray(end + 4, end + 4 + length).toString('utf8')
          this.#buffer = this.#buffer.subarray(end + 4 + length)
          return { status: Number(statusLine.split(' ')[1]), headers, body }
        }
      }
      if (this.error) throw this.error
      if (this.ended) throw new Error('closed without an answer')
      if (Date.now() > deadline) throw new Error('no answer in time')
      await new Promise<void>((resolve) => {
        this.#waiting = resolve
        setTimeout(resolve, 100)
      })
      this.#waiting = undefined
    }
  }
}

async function startWithUser(
  t: Test,
  env: Record<string, string> = {},
): Promise<{ server: ServerProcess; port: number; token: string; email: string }> {
  const dataDir = tempDir(t)
  const port = await freePort()
  const server = spawnServer('shutdown', { dataDir, port, env })
  t.teardown(() => {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL')
  })
  await untilHealthy(server)
  const email = uniqueEmail('shutdown')
  const signup = await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))
  t.equal(signup.status, 201)
  const { accessToken } = (await signup.json()) as { accessToken: string }
  return { server, port, token: accessToken, email }
}

/** The process's JSON log lines, parsed. */
function logLines(server: ServerProcess): Array<{ msg?: string; level?: number }> {
  return server
    .output()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as { msg?: string; level?: number }
      } catch {
        return { msg: line }
      }
    })
}

function checkAnswer(t: Test, answer: Answer, name: string): void {
  t.ok(answer.status === 200 || answer.status === 503, `${name}: 200 or 503 (${answer.status})`)
  if (answer.status === 503) {
    t.equal(answer.headers.connection, 'close', `${name}: a 503 closes the connection`)
    t.match(JSON.parse(answer.body), { statusCode: 503, code: 'SHUTTING_DOWN' }, `${name}: the error shape`)
    t.ok(answer.headers['strict-transport-security'], `${name}: with the security headers`)
  }
}

t.test('requests sent before SIGTERM, on keep-alive connections and in the accept queue, are answered', async (t) => {
  // Slow hashing, so that a login is surely in flight when the signal arrives.
  const { server, port, token, email } = await startWithUser(t, { ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '4' })

  // Keep-alive connections, each with one request answered already: idle when the signal comes.
  const keepAlive = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const connection = new Connection(port)
      await connection.connected()
      connection.send('/users/me', token)
      t.equal((await connection.answer()).status, 200)
      return connection
    }),
  )
  const login = fetch(`${server.base}/auth/login`, json({ email, password: PASSWORD }))
  await sleep(30)

  // Frozen, the server reads nothing: the requests below wait in its socket buffers, the new
  // connections in its accept queue (the kernel completes their handshakes), when SIGTERM arrives.
  server.child.kill('SIGSTOP')
  for (const connection of keepAlive) connection.send('/users/me', token)
  const fresh = Array.from({ length: 40 }, () => new Connection(port))
  await Promise.all(fresh.map((connection) => connection.connected()))
  for (const connection of fresh) connection.send('/users/me', token)
  await sleep(100)
  server.child.kill('SIGTERM')
  await sleep(50)
  server.child.kill('SIGCONT')

  const outcomes = await Promise.allSettled([...keepAlive, ...fresh].map((connection) => connection.answer()))
  const failures = outcomes.flatMap((outcome, i) =>
    outcome.status === 'rejected'
      ? [`${i < keepAlive.length ? 'keep-alive' : 'queued'} #${i}: ${(outcome.reason as Error).message}`]
      : [],
  )
  t.same(failures, [], 'no request sent before the signal was reset or left unanswered')
  outcomes.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') checkAnswer(t, outcome.value, `request #${i}`)
  })
  t.equal((await login).status, 200, 'the login in flight finished')

  t.same(await server.exit, { code: 0, signal: null }, 'exit 0')
  const lines = logLines(server)
  t.equal(lines.at(-1)?.msg, 'stopped', 'the last line says stopped')
  t.notOk(
    lines.some((line) => (line.level ?? 0) >= 50),
    'nothing logged as an error',
  )
})

t.test('many keep-alive clients sending while SIGTERM arrives: no reset, every answer 2xx or 503', async (t) => {
  const { server, port, token } = await startWithUser(t)
  const statuses = new Map<number, number>()
  const errors = new Map<string, number>()
  let afterSignal = 0
  let signalled = false
  const count = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1)

  /** One client: its own keep-alive connection, a request after each answer, until it is told to go away. */
  const client = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (;;) {
        const outcome = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
          (resolve, reject) => {
            const request = http.get(
              { host: '127.0.0.1', port, path: '/users/me', agent, headers: { authorization: `Bearer ${token}` } },
              (response) => {
                let body = ''
                response.setEncoding('utf8')
                response.on('data', (chunk) => {
                  body += chunk
                })
                response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
                response.on('error', reject)
              },
            )
            request.on('error', reject)
          },
        ).catch((error: NodeJS.ErrnoException) => error)
        if (outcome instanceof Error) {
          count(errors, outcome.code ?? outcome.message)
          return // the listener is closed (ECONNREFUSED), or worse (counted)
        }
        count(statuses, outcome.status)
        if (signalled) afterSignal++
        if (outcome.status === 503) {
          t.equal(outcome.headers.connection, 'close', 'a 503 closes the connection')
          t.match(JSON.parse(outcome.body), { code: 'SHUTTING_DOWN' })
          return // a client told the server is going away goes elsewhere
        }
      }
    } finally {
      agent.destroy()
    }
  }

  const clients = Array.from({ length: 40 }, client)
  await sleep(500)
  signalled = true
  server.child.kill('SIGTERM')
  await Promise.all(clients)

  t.same(await server.exit, { code: 0, signal: null }, 'exit 0')
  t.same(
    [...errors.keys()].filter((code) => code !== 'ECONNREFUSED'),
    [],
    'no reset, no other error',
  )
  t.same(
    [...statuses.keys()].filter((status) => status !== 200 && status !== 503),
    [],
    'every answer is 200 or 503',
  )
  t.ok((statuses.get(200) ?? 0) > 40, `answered before the signal (${statuses.get(200)} x 200)`)
  t.ok(afterSignal > 0, `answered after the signal (${afterSignal}; ${statuses.get(503) ?? 0} x 503)`)
  t.equal(logLines(server).at(-1)?.msg, 'stopped', 'the last line says stopped')
})
