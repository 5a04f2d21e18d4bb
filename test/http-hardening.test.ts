// What reaches the server below Fastify: requests that Node's HTTP parser
// refuses (malformed request line, control characters in headers, Content-Length
// with Transfer-Encoding, oversized headers), clients too slow to send theirs,
// and bodies that would poison a prototype. Over a real listening socket, since
// app.inject never goes through Node's parser.
import { connect } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { buildLoggedTestApp, buildTestApp, PASSWORD, sleep, tempDir, uniqueEmail } from './helper.js'

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (typeof address !== 'object' || address === null) throw new Error('not listening')
  return address.port
}

interface RawAnswer {
  /** Everything the server sent before it closed the connection (or before the wait ended). */
  text: string
  /** Whether the server closed the connection. */
  closed: boolean
  /** Milliseconds from the first byte sent to the close. */
  elapsed: number
}

/**
 * Sends `chunks` over a new connection, `gapMs` apart (0: all at once), and
 * collects what comes back until the server closes the connection or `waitMs` passed.
 */
function rawExchange(port: number, chunks: Array<string | Buffer>, gapMs = 0, waitMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const started = performance.now()
    let text = ''
    let settled = false
    const finish = (closed: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ text, closed, elapsed: performance.now() - started })
    }
    const timer = setTimeout(() => finish(false), waitMs)
    socket.on('data', (data) => {
      text += data.toString('latin1')
    })
    // A reset after the answer (the client was still sending) counts as closed.
    socket.on('error', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        if (settled || socket.destroyed) return
        socket.write(chunk)
        if (gapMs > 0) await sleep(gapMs)
      }
    })
  })
}

interface ParsedAnswer {
  status: number
  headers: Record<string, string>
  body: unknown
}

function parseAnswer(text: string): ParsedAnswer {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) throw new Error(`no complete HTTP answer: ${JSON.stringify(text.slice(0, 200))}`)
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const body = text.slice(end + 4)
  let parsed: unknown = body
  try {
    parsed = JSON.parse(body)
  } catch {}
  return { status: Number(statusLine.split(' ')[1]), headers, body: parsed }
}

// Marked values that must never reach a log line, in any form.
const BEARER = 'eyJhbGciOiJFZERTQSJ9.Zebra-Bearer-Secret-1234567890.signature'
const COOKIE = 's%3AZebra-Cookie-Secret-0987654321.signature'
const BODY_PASSWORD = 'Zebra-Body-Password-5555'
const credentials = `Authorization: Bearer ${BEARER}\r\nCookie: refresh_token=${COOKIE}\r\n`
const body = JSON.stringify({ email: 'ada@example.com', password: BODY_PASSWORD })

/** Requests that Node's HTTP parser refuses, each carrying the marked credentials. */
const MALFORMED: Array<{ name: string; request: string; status: number; code: string }> = [
  {
    name: 'a control character in a header value',
    request: `POST /auth/login HTTP/1.1\r\nHost: localhost\r\n${credentials}X-Note: a\x01b\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'Content-Length with Transfer-Encoding',
    request: `POST /auth/login HTTP/1.1\r\nHost: localhost\r\n${credentials}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'a malformed request line',
    request: `POST /auth/login HTTP/1.1 extra\r\nHost: localhost\r\n${credentials}Content-Length: ${body.length}\r\n\r\n${body}`,
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'an invalid method',
    request: `P\x00ST /auth/login HTTP/1.1\r\nHost: localhost\r\n${credentials}\r\n${body}`,
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    name: 'a header over the limit (a 100 KB token)',
    request: `GET /users/me HTTP/1.1\r\nHost: localhost\r\nCookie: refresh_token=${COOKIE}\r\nAuthorization: Bearer ${BEARER}${'x'.repeat(100_000)}\r\n\r\n`,
    status: 431,
    code: 'HEADERS_TOO_LARGE',
  },
]

t.test("requests refused by Node's HTTP parser: the contract's shape and the usual security headers", async (t) => {
  const { app } = await buildTestApp(t)
  const port = await listen(app)
  const normal = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(normal.status, 200)
  const security = ['content-security-policy', 'strict-transport-security', 'x-content-type-options', 'referrer-policy']
  for (const name of security) t.ok(normal.headers.get(name), `a normal answer has ${name}`)

  for (const { name, request, status, code } of MALFORMED) {
    const answer = await rawExchange(port, [request])
    t.ok(answer.closed, `${name}: the connection is closed`)
    const { status: got, headers, body } = parseAnswer(answer.text)
    t.equal(got, status, `${name}: ${status}`)
    t.match(body, { statusCode: status, code, error: String, message: String }, `${name}: the error shape, ${code}`)
    t.match(headers['content-type'], /^application\/json/, `${name}: JSON`)
    t.equal(headers.connection, 'close', `${name}: Connection: close`)
    t.equal(headers['cache-control'], 'no-store', `${name}: no-store`)
    for (const header of security) {
      t.equal(headers[header], normal.headers.get(header), `${name}: the same ${header} as every answer`)
    }
    t.notOk(headers['x-powered-by'], `${name}: no X-Powered-By`)
  }

  // Router errors (a URL that does not decode) get that same set, not a second one.
  const badUrl = parseAnswer((await rawExchange(port, ['GET /lists/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n'])).text)
  t.equal(badUrl.status, 400, 'an undecodable URL is a 400')
  t.match(badUrl.body, { code: 'VALIDATION_FAILED' })
  for (const header of security) {
    t.equal(badUrl.headers[header], normal.headers.get(header), `a router error has the same ${header}`)
  }
})

t.test('the parser error codes are documented in OpenAPI', async (t) => {
  const { app } = await buildTestApp(t)
  const document = (await app.inject({ url: '/openapi.json' })).json()
  for (const code of ['BAD_REQUEST', 'HEADERS_TOO_LARGE', 'REQUEST_TIMEOUT', 'SHUTTING_DOWN']) {
    t.match(JSON.stringify(document), code, `${code} is in the document`)
  }
})

/** A log line's text plus every byte array in it decoded (a Buffer logged as JSON is a list of numbers). */
function logText(lines: string[]): string {
  const decoded: string[] = []
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) {
      if (value.length > 0 && value.every((item) => Number.isInteger(item) && item >= 0 && item < 256)) {
        decoded.push(Buffer.from(value as number[]).toString('latin1'))
      } else value.forEach(walk)
    } else if (value && typeof value === 'object') Object.values(value).forEach(walk)
  }
  for (const line of lines) {
    try {
      walk(JSON.parse(line))
    } catch {}
  }
  return lines.join('') + decoded.join('\n')
}

t.test('malformed requests never put request bytes in the log, at any level', async (t) => {
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
    const { app, lines } = await buildLoggedTestApp(t, { LOG_LEVEL: level })
    const port = await listen(app)
    for (const { request } of MALFORMED) await rawExchange(port, [request])
    const log = logText(lines)
    for (const secret of [BEARER, COOKIE, BODY_PASSWORD, 'Zebra']) {
      t.notOk(log.includes(secret), `${level}: the log holds no ${secret.slice(0, 16)}…`)
    }
    t.notMatch(log, /rawPacket/, `${level}: no raw packet`)
    const refused = lines.filter((line) => line.includes('malformed or slow request refused'))
    if (['trace', 'debug', 'info'].includes(level)) {
      t.equal(refused.length, MALFORMED.length, `${level}: one line per refused request`)
      for (const line of refused) {
        t.same(
          Object.keys(JSON.parse(line))
            .filter((key) => !['level', 'time', 'pid', 'hostname', 'msg'].includes(key))
            .sort(),
          ['cause', 'code', 'remoteAddress', 'statusCode'],
          `${level}: codes and the address only`,
        )
      }
    } else t.equal(refused.length, 0, `${level}: not logged below info`)
    await app.close()
  }
})

t.test('slow clients are cut off: a trickled body, trickled headers', async (t) => {
  const { app, lines } = await buildLoggedTestApp(t, { REQUEST_TIMEOUT: '2s', HEADERS_TIMEOUT: '1s' })
  const port = await listen(app)
  const email = uniqueEmail('slow')
  const signup = await fetch(`http://127.0.0.1:${port}/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  })
  t.equal(signup.status, 201)

  const loginBody = JSON.stringify({ email, password: PASSWORD })
  const head = `POST /auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${loginBody.length}\r\n\r\n`
  // Headers at once, then the body a byte every 300 ms: about 15 s in all if nobody stopped it.
  const trickledBody = [head, ...loginBody.split('')]
  const headerBytes = head.split('')
  const [body, ...others] = await Promise.all([
    rawExchange(port, trickledBody, 300, 12_000),
    // Several at once, and the headers themselves trickled (slowloris).
    ...Array.from({ length: 4 }, () => rawExchange(port, trickledBody, 300, 12_000)),
    rawExchange(port, headerBytes, 300, 12_000),
  ])
  const slowHeaders = others.pop() as RawAnswer
  for (const [name, answer, limit] of [
    ['a trickled body', body, 2000],
    ...others.map((other, i) => [`trickled body ${i + 2}`, other, 2000] as const),
    ['trickled headers', slowHeaders, 1000],
  ] as Array<[string, RawAnswer, number]>) {
    t.ok(answer.closed, `${name}: the connection was closed (after ${Math.round(answer.elapsed)} ms)`)
    t.ok(answer.elapsed >= limit - 100, `${name}: not before its timeout`)
    t.ok(answer.elapsed < limit + 2500, `${name}: soon after its timeout`)
    const parsed = parseAnswer(answer.text)
    t.equal(parsed.status, 408, `${name}: 408`)
    t.match(parsed.body, { statusCode: 408, code: 'REQUEST_TIMEOUT' }, `${name}: the error shape`)
  }

  // A normal client is not affected.
  const login = await fetch(`http://127.0.0.1:${port}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: loginBody,
  })
  t.equal(login.status, 200, 'a login at normal speed works')
  // A body cut off is the client's doing: not a database failure, not an error.
  t.equal((await fetch(`http://127.0.0.1:${port}/ready`)).status, 200, '/ready stays 200')
  t.same(
    lines.filter((line) => (JSON.parse(line) as { level: number }).level >= 40),
    [],
    'nothing logged as a warning or an error',
  )
})

t.test('timeouts: defaults, configured values reach the server, a bad combination is refused', async (t) => {
  const dir = tempDir(t)
  const defaults = loadConfig({ env: { DATA_DIR: dir }, cwd: dir })
  t.same(
    [defaults.requestTimeout, defaults.headersTimeout, defaults.connectionTimeout, defaults.keepAliveTimeout],
    [30, 10, 60, 72],
  )
  t.equal(
    loadConfig({ env: { DATA_DIR: dir, REQUEST_TIMEOUT: '5s' }, cwd: dir }).headersTimeout,
    5,
    'headers: at most the request',
  )
  t.throws(() => loadConfig({ env: { DATA_DIR: dir, REQUEST_TIMEOUT: '5s', HEADERS_TIMEOUT: '6s' }, cwd: dir }), {
    name: 'ConfigError',
    message: /^HEADERS_TIMEOUT: /,
  })
  t.throws(() => loadConfig({ env: { DATA_DIR: dir, REQUEST_TIMEOUT: 'never' }, cwd: dir }), {
    message: /^REQUEST_TIMEOUT: /,
  })

  const { app } = await buildTestApp(t, {
    REQUEST_TIMEOUT: '20s',
    HEADERS_TIMEOUT: '7s',
    CONNECTION_TIMEOUT: '40s',
    KEEP_ALIVE_TIMEOUT: '1s',
  })
  t.same(
    [app.server.requestTimeout, app.server.headersTimeout, app.server.timeout, app.server.keepAliveTimeout],
    [20_000, 7_000, 40_000, 1_000],
  )
  // An idle keep-alive connection is closed after KEEP_ALIVE_TIMEOUT.
  const port = await listen(app)
  const idle = await rawExchange(port, ['GET /health HTTP/1.1\r\nHost: x\r\n\r\n'], 0, 5000)
  t.equal(parseAnswer(idle.text).status, 200)
  t.ok(idle.closed && idle.elapsed >= 900 && idle.elapsed < 3000, `closed when idle (${Math.round(idle.elapsed)} ms)`)
})

t.test(
  "bodies are parsed by Fastify's JSON parser: prototype poisoning is refused, an empty body is none",
  async (t) => {
    const { app } = await buildTestApp(t)
    for (const payload of [
      `{"email":"${uniqueEmail()}","password":"${PASSWORD}","__proto__":{"isAdmin":true}}`,
      `{"email":"${uniqueEmail()}","password":"${PASSWORD}","constructor":{"prototype":{"isAdmin":true}}}`,
      `{"email":"x@y.z","password":"Broken-Json-Zebra"`,
    ]) {
      const response = await app.inject({
        method: 'POST',
        url: '/auth/signup',
        payload,
        headers: { 'content-type': 'application/json' },
      })
      t.equal(response.statusCode, 400, payload.slice(-40))
      t.match(
        response.json(),
        { code: 'VALIDATION_FAILED', details: [{ field: 'body' }] },
        'refused as a body, not a field',
      )
      t.notMatch(response.body, /Zebra|isAdmin/, 'the body is not echoed')
    }
    const logout = await app.inject({
      method: 'POST',
      url: '/auth/logout',
      payload: '',
      headers: { 'content-type': 'application/json' },
    })
    t.equal(logout.statusCode, 204, 'an empty JSON body is no body')
  },
)
