// An open-loop load generator: requests leave on a fixed schedule, `rate` per
// second, whether or not earlier ones have been answered, over a pool of
// keep-alive connections (node:http's Agent). A request that finds every
// connection busy waits in the agent's queue, and that wait counts in its
// latency: a slow server cannot slow the offered load down (no coordinated
// omission), unlike a closed loop, or autocannon's `overallRate`, whose
// connections send back to back until each has used its share of the current
// second, then pause: a saturating burst at the start of every second.
//
// Latency runs from the moment the request is handed to the agent to the end of
// the response, in microseconds. The schedule is kept with a timer, so requests
// leave in small bunches (those due since the last tick); how late a tick was
// against the schedule (the generator's own delay, not the server's) is
// reported apart as `lag`.
import http from 'node:http'

const percentile = (sorted, p) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

/**
 * Runs `{ port, method, path, headers, body, rate, duration, connections }`;
 * `stop()` ends the schedule early. `done` resolves the summary once every
 * request sent has been answered (or has failed).
 */
export function openLoop(job) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections ?? 50, scheduling: 'fifo' })
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
  let timer
  const body = job.body === undefined ? undefined : Buffer.from(job.body)
  const headers = body === undefined ? job.headers : { ...job.headers, 'content-length': body.length }

  let finish
  const done = new Promise((resolve) => {
    finish = resolve
  })
  const start = performance.now()
  let lastSent = start

  let finished = false
  const maybeFinish = () => {
    if (stopped && answered === sent && !finished) {
      finished = true
      agent.destroy()
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
  }
  const settle = () => {
    answered++
    maybeFinish()
  }

  const send = (due) => {
    const index = sent++
    const at = performance.now()
    lastSent = at
    lags[index] = (at - due) * 1000
    const request = http.request(
      { host: '127.0.0.1', port: job.port, path: job.path, method: job.method ?? 'GET', headers, agent },
      (response) => {
        response.resume()
        response.on('end', () => {
          const code = response.statusCode ?? 0
          statusCodes[code] = (statusCodes[code] ?? 0) + 1
          if (code >= 200 && code < 300) latencies[ok++] = (performance.now() - at) * 1000
          settle()
        })
      },
    )
    request.on('error', () => {
      errors++
      settle()
    })
    request.end(body)
  }

  const tick = () => {
    const now = performance.now()
    while (!stopped && sent < planned && start + sent * interval <= now) send(start + sent * interval)
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
