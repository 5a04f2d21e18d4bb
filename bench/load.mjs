// The load generator: autocannon, in its own process so that it never shares an
// event loop with the server or the orchestrator. Reads one JSON line on stdin,
// `{ jobs: [...] }`, runs the jobs at the same time, and prints one JSON result
// per job on stdout. A later line `stop` on stdin ends every job early.
//
// A job: { name, port, method, path, headers, body, connections, duration, sessions?, openLoopRate? }.
// With `sessions` (one cookie jar per connection), each connection sends its own
// cookies and keeps whatever the server sets: real refresh-token rotation, where
// every request presents the token the previous response issued.
// With `openLoopRate` (requests per second), the job is open-loop instead
// (bench/open-loop.mjs): a fixed schedule, latency in fractions of a ms.
import { createInterface } from 'node:readline'
import autocannon from 'autocannon'
import { openLoop } from './open-loop.mjs'

const MAX_DURATION_S = 120

const cookieHeader = (jar) =>
  Object.entries(jar)
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')

/** setupClient for cookie-keeping connections: connection i owns sessions[i]. */
function cookieJarClients(job) {
  let next = 0
  return (client) => {
    const jar = { ...job.sessions[next++ % job.sessions.length] }
    const send = () => client.setHeaders({ ...job.headers, cookie: cookieHeader(jar) })
    send()
    // Raw headers arrive before the body completes, so the next request built
    // after this response already carries the rotated cookies.
    client.on('headers', ({ headers }) => {
      let changed = false
      for (let i = 0; i + 1 < headers.length; i += 2) {
        if (String(headers[i]).toLowerCase() !== 'set-cookie') continue
        const pair = String(headers[i + 1]).split(';', 1)[0]
        const index = pair.indexOf('=')
        const name = pair.slice(0, index).trim()
        const value = pair.slice(index + 1).trim()
        if (value) jar[name] = value
        else delete jar[name]
        changed = true
      }
      if (changed) send()
    })
  }
}

function runJob(job) {
  const duration = Math.min(job.duration, MAX_DURATION_S)
  if (job.openLoopRate) {
    const run = openLoop({ ...job, duration, rate: job.openLoopRate })
    return { instance: run, done: run.done.then((result) => ({ openLoop: true, ...result })) }
  }
  const instance = autocannon({
    url: `http://127.0.0.1:${job.port}${job.path}`,
    method: job.method ?? 'GET',
    headers: job.headers ?? {},
    body: job.body,
    connections: job.connections ?? 50,
    duration,
    timeout: 30,
    ...(job.sessions ? { setupClient: cookieJarClients(job) } : {}),
  })
  const done = new Promise((resolve, reject) => {
    instance.on('done', resolve)
    instance.on('error', reject)
  })
  return { instance, done }
}

function summarize(name, result) {
  if (result.openLoop) {
    const { openLoop: _, ...rest } = result
    return { name, ...rest, non2xx: result.total - result.ok, timeouts: 0 }
  }
  const completed = result.requests.total
  const ok = completed - result.non2xx
  return {
    name,
    seconds: result.duration,
    total: completed,
    ok,
    rps: ok / result.duration,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([k, v]) => [k, v.count])),
    // autocannon records 2xx latencies only, in whole milliseconds.
    latency: {
      mean: result.latency.mean,
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
    },
  }
}

const lines = createInterface({ input: process.stdin })
let running
lines.on('line', (line) => {
  if (!running) {
    const spec = JSON.parse(line)
    running = spec.jobs.map((job) => ({ job, ...runJob(job) }))
    Promise.all(running.map((entry) => entry.done)).then(
      (results) => {
        process.stdout.write(`${JSON.stringify(results.map((result, i) => summarize(running[i].job.name, result)))}\n`)
        process.exit(0)
      },
      (error) => {
        process.stderr.write(`load: ${error.message}\n`)
        process.exit(1)
      },
    )
  } else if (line.trim() === 'stop') {
    for (const entry of running) entry.instance.stop()
  }
})
