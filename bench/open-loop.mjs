// An open-loop load generator: requests leave on a fixed schedule, `rate` per
// second, whether or not earlier ones have been answered, over a pool of
// keep-alive connections. A request that finds every connection busy waits in
// a queue, and that wait counts in its latency: a slow server cannot slow the
// offered load down (no coordinated omission), unlike a closed loop, or
// autocannon's `overallRate`, whose connections send back to back until each
// has used its share of the current second, then pause: a saturating burst at
// the start of every second.
//
// The client is lean, as autocannon's is, so that it takes little of the CPU
// it shares with the server: plain sockets, one request buffer built once, and
// answers framed by their Content-Length (every server the bench runs sends
// one; an answer without it counts as an error). Latency runs from the moment
// a request is due to be written (queued behind busy connections included) to
// the last byte of its answer, in microseconds. The schedule is kept with a
// timer, so requests leave in small bunches; how late a bunch left against the
// schedule (the generator's own delay, not the server's) is reported apart as
// `lag`, and not counted in the latency.
import net from 'node:net'

const percentile = (sorted, p) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

const HEADER_END = Buffer.from('\r\n\r\n')

/** The request as bytes, once: `{ method, path, headers, body }`. */
function requestBytes(job) {
  const body = job.body === undefined ? undefined : Buffer.from(job.body)
  const headers = { host: `127.0.0.1:${job.port}`, ...job.headers }
  if (body) headers['content-length'] = String(body.length)
  const head = `${job.method ?? 'GET'} ${job.path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1')
}

/**
 * One keep-alive connection answering one request at a time. `send(onDone)`
 * writes the request; `onDone(status)` follows the answer's last byte (status
 * 0: the connection failed, and is opened again for the next request).
 */
function connection(port, request) {
  let socket
  let buffer = Buffer.alloc(0)
  let onDone
  let closed = false
  const open = () => {
    buffer = Buffer.alloc(0)
    const current = net.connect(port, '127.0.0.1')
    socket = current
    current.setNoDelay(true)
    current.on('data', (chunk) => {
      buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk
      const end = buffer.indexOf(HEADER_END)
      if (end === -1 || !onDone) return
      const head = buffer.toString('latin1', 0, end)
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1]
      if (length === undefined) return fail(current)
      const total = end + 4 + Number(length)
      if (buffer.length < total) return
      buffer = buffer.subarray(total)
      const done = onDone
      onDone = undefined
      done(Number(head.slice(9, 12)))
    })
    current.on('error', () => fail(current))
    current.on('close', () => fail(current))
  }
  /** `failed` broke (or answered without a length): the request on it fails, and a new connection opens. */
  const fail = (failed) => {
    if (failed !== socket || closed) return
    failed.destroy()
    const done = onDone
    onDone = undefined
    open()
    done?.(0)
  }
  open()
  return {
    send(done) {
      onDone = done
      socket.write(request)
    },
    close() {
      closed = true
      onDone = undefined
      socket.destroy()
    },
  }
}

/**
 * Runs `{ port, method, path, headers, body, rate, duration, connections }`;
 * `stop()` ends the schedule early. `done` resolves the summary once every
 * request sent has been answered (or has failed).
 */
export function openLoop(job) {
  const request = requestBytes(job)
  const idle = Array.from({ length: job.connections ?? 50 }, () => connection(job.port, request))
  const all = [...idle]
  const waiting = [] // due times of requests that found every connection busy
  const interval = 1000 / job.rate
  const planned = Math.max(1, Math.round(job.rate * job.duration))
  const latencies = new Float64Array(planned)
  const lags = new Float64Array(planned)
  const statusCodes = {}
  let sent = 0
  let answered = 0
  let ok = 0
  let errors = 0
  let stopped = false
  let finished = false
  let timer
  let finish
  const done = new Promise((resolve) => {
    finish = resolve
  })
  const start = performance.now()
  let lastSent = start

  const maybeFinish = () => {
    if (!stopped || answered !== sent || finished) return
    finished = true
    for (const conn of all) conn.close()
    const seconds = (lastSent - start) / 1000 + interval / 1000
    const sorted = latencies.subarray(0, ok).sort()
    const lagSorted = lags.subarray(0, sent).sort()
    const ms = (us) => us / 1000
    finish({
      seconds,
      planned,
      sent,
      total: answered - errors, // answers received, as autocannon counts them
      ok,
      errors,
      offeredRate: job.rate,
      rps: ok / seconds,
      statusCodes,
      latency: {
        p50: ms(percentile(sorted, 50)),
        p90: ms(percentile(sorted, 90)),
        p99: ms(percentile(sorted, 99)),
        p99_9: ms(percentile(sorted, 99.9)),
        max: ms(sorted[sorted.length - 1] ?? Number.NaN),
      },
      lag: { p50: ms(percentile(lagSorted, 50)), p99: ms(percentile(lagSorted, 99)), max: ms(lagSorted.at(-1)) },
    })
  }

  /** Sends the request due at `due` (performance.now() time) on `conn`. */
  const dispatch = (conn, due) => {
    conn.send((status) => {
      answered++
      if (status === 0) errors++
      else {
        statusCodes[status] = (statusCodes[status] ?? 0) + 1
        if (status >= 200 && status < 300) latencies[ok++] = (performance.now() - due) * 1000
      }
      const next = waiting.shift()
      if (next === undefined) idle.push(conn)
      else dispatch(conn, next)
      maybeFinish()
    })
  }

  const tick = () => {
    const now = performance.now()
    while (!stopped && sent < planned && start + sent * interval <= now) {
      // Due at its slot; it leaves now (`lag` later), or waits for a connection.
      const due = now
      lags[sent] = (now - (start + sent * interval)) * 1000
      sent++
      lastSent = now
      const conn = idle.pop()
      if (conn) dispatch(conn, due)
      else waiting.push(due)
    }
    if (sent >= planned) stopped = true
    if (stopped) return maybeFinish()
    timer = setTimeout(tick, Math.max(0, start + sent * interval - performance.now()))
  }
  tick()

  return {
    done,
    stop() {
      if (stopped) return
      stopped = true
      clearTimeout(timer)
      maybeFinish()
    },
  }
}
