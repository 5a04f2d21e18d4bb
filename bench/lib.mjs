// Helpers shared by the bench orchestrator: processes, ports, memory sampling,
// HTTP calls to the server under test, and the load generator (a separate process).
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'

export const BENCH_DIR = import.meta.dirname
export const ROOT = path.resolve(BENCH_DIR, '..')
/** The server as `npm start` runs it (`npm run build` makes it). */
export const CLI = path.join(ROOT, 'dist', 'latchkey.cjs')
export const HOST = '127.0.0.1'

export const median = (values) => {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** A free loopback port (the tiny race between close and reuse does not matter here). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, HOST, () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** One GET with a fresh connection; resolves the status code, or 0 on a connection error. */
export function probe(port, urlPath, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const request = http.get({ host: HOST, port, path: urlPath, agent: false, timeout: timeoutMs }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    })
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(0))
  })
}

/**
 * One JSON request on a fresh connection (no pooled keep-alive socket that the
 * server may close between scenarios). Resolves `{ status, json, setCookie, headers }`.
 */
function requestJson(method, port, urlPath, body, headers) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const bodyHeaders =
      payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
    const request = http.request(
      {
        host: HOST,
        port,
        path: urlPath,
        method,
        agent: false,
        timeout: 60_000,
        headers: { ...bodyHeaders, ...headers },
      },
      (response) => {
        let text = ''
        response.setEncoding('utf8')
        response.on('data', (chunk) => {
          text += chunk
        })
        response.on('end', () => {
          try {
            resolve({
              status: response.statusCode,
              json: text ? JSON.parse(text) : undefined,
              setCookie: response.headers['set-cookie'] ?? [],
              headers: response.headers,
            })
          } catch (error) {
            reject(error)
          }
        })
      },
    )
    request.on('timeout', () => request.destroy(new Error(`${method} ${urlPath} timed out`)))
    request.on('error', reject)
    request.end(payload)
  })
}

export const getJson = (port, urlPath, headers = {}) => requestJson('GET', port, urlPath, undefined, headers)

/** Polls `urlPath` until it answers 200; resolves the milliseconds waited. Bounded by `timeoutMs`. */
export async function waitFor200(port, urlPath, { timeoutMs = 15_000, intervalMs = 2, child } = {}) {
  const start = performance.now()
  for (let attempt = 0; attempt < 100_000; attempt++) {
    if (child && child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before ready`)
    if ((await probe(port, urlPath)) === 200) return performance.now() - start
    if (performance.now() - start > timeoutMs) break
    await sleep(intervalMs)
  }
  throw new Error(`no 200 from ${urlPath} on port ${port} within ${timeoutMs} ms`)
}

/**
 * Starts a Node process that listens on `port`; stdout and stderr go to `logFile`
 * (as a production server's would go to a file or journal, not to a slow pipe).
 * `command` defaults to this node (`args` then start with its flags and script).
 * With `group`, the process leads a process group of its own, and stopping
 * signals the whole group (for a launcher such as npm, whose shell and server
 * are its children).
 */
export function startProcess({ args, env, logFile, port, cwd = ROOT, command = process.execPath, group = false }) {
  const fd = openSync(logFile, 'a')
  const child = spawn(command, args, {
    cwd,
    // Only what the caller gives: nothing of the caller's environment (such as
    // NODE_OPTIONS or NODE_EXTRA_CA_CERTS, which alone adds about 90 ms to every
    // node start on this machine) reaches the measured process.
    env,
    stdio: ['ignore', fd, fd],
    detached: group,
  })
  closeSync(fd)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const signal = (name) => {
    try {
      if (group) process.kill(-child.pid, name)
      else child.kill(name)
    } catch {
      // already gone
    }
  }
  return {
    child,
    pid: child.pid,
    port,
    logFile,
    exited,
    async stop(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      if (child.exitCode === null && child.signalCode === null) {
        signal('SIGTERM')
        const timer = setTimeout(() => signal('SIGKILL'), timeoutMs)
        await exited
        clearTimeout(timer)
      }
      // The launcher may exit before its server has: wait for the whole group.
      while (group && groupAlive(child.pid)) {
        if (Date.now() > deadline) signal('SIGKILL')
        await sleep(10)
      }
      return exited
    },
  }
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

/** Resident memory of a process in MiB: `VmRSS` now, `VmHWM` the peak since it started. */
export function readMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024
    return { rss: field('VmRSS'), hwm: field('VmHWM') }
  } catch {
    return { rss: Number.NaN, hwm: Number.NaN }
  }
}

/** CPU time (user + system) a process has used so far, in milliseconds. */
export function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}
const CLOCK_TICKS = 100

// ----------------------------------------------------------------------------
// PostgreSQL: throw-away databases beside the caller's, and their backends' CPU

/** A client on `url` (any database of the server: it only creates and drops others). */
export async function connectPostgres(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  await client.connect()
  // An idle connection that PostgreSQL drops must not crash the bench.
  client.on('error', () => {})
  return client
}

/** `url` with its database replaced by `database`. */
export function postgresUrl(url, database) {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.href
}

export const createDatabase = (admin, name) => admin.query(`create database "${name}"`)

/** Drops `name`, ending any session still on it (PostgreSQL 13+). */
export const dropDatabase = (admin, name) => admin.query(`drop database if exists "${name}" with (force)`)

/**
 * CPU time (ms) of each PostgreSQL client backend serving `database`, by pid,
 * read from /proc: only meaningful when PostgreSQL runs on this machine, so a
 * pid whose process is not `postgres` counts as unknown (NaN).
 */
export async function backendCpuMs(admin, database) {
  const { rows } = await admin.query(
    "select pid from pg_stat_activity where datname = $1 and backend_type = 'client backend'",
    [database],
  )
  return new Map(rows.map(({ pid }) => [pid, isPostgres(pid) ? cpuMs(pid) : Number.NaN]))
}

function isPostgres(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres'
  } catch {
    return false
  }
}

/** CPU (ms) the backends used between two `backendCpuMs` readings; backends that started meanwhile count from zero. */
export function backendCpuDelta(before, after) {
  let total = 0
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0)
  return total
}

/** Samples VmRSS every `intervalMs` until stopped; `stop()` returns the peak in MiB. */
export function sampleRss(pid, intervalMs = 50) {
  let peak = readMemory(pid).rss
  const timer = setInterval(() => {
    const { rss } = readMemory(pid)
    if (rss > peak || Number.isNaN(peak)) peak = rss
  }, intervalMs)
  return {
    stop() {
      clearInterval(timer)
      const { rss } = readMemory(pid)
      return Math.max(peak, Number.isNaN(rss) ? 0 : rss)
    },
  }
}

/** The auth cookies a response set, name -> raw (signed) value, ready for a Cookie header. */
export function cookiesFrom(setCookie = []) {
  const cookies = {}
  for (const line of setCookie) {
    const [pair] = line.split(';')
    const index = pair.indexOf('=')
    cookies[pair.slice(0, index).trim()] = pair.slice(index + 1).trim()
  }
  return cookies
}

export const cookieHeader = (cookies) =>
  Object.entries(cookies)
    .filter(([, value]) => value)
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')

/** A JSON POST. */
export const postJson = (port, urlPath, body, headers = {}) => requestJson('POST', port, urlPath, body, headers)

/** Signs up (or, with `login: true`, logs in); returns the access token and the auth cookies. */
export async function signIn(port, { email, password, login = false }) {
  const { status, json, setCookie } = await postJson(port, login ? '/auth/login' : '/auth/signup', { email, password })
  if (status !== (login ? 200 : 201)) throw new Error(`${login ? 'login' : 'signup'} of ${email}: ${status}`)
  return { userId: json.user.id, accessToken: json.accessToken, cookies: cookiesFrom(setCookie) }
}

/**
 * Runs the load generator (bench/load.mjs, autocannon) in its own process. `spec`
 * is `{ jobs: [...] }`; resolves one result per job. With `stopWhen`, the load
 * is stopped early once that promise resolves (its `duration` stays the bound).
 */
export function runLoad(spec, { stopWhen } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(BENCH_DIR, 'load.mjs')], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => {
      output += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with code ${code}`))
      try {
        resolve(JSON.parse(output))
      } catch (error) {
        reject(new Error(`load generator output is not JSON: ${error.message}: ${output.slice(0, 200)}`))
      }
    })
    child.stdin.write(`${JSON.stringify(spec)}\n`)
    stopWhen?.then(() => {
      if (child.exitCode === null) child.stdin.write('stop\n')
    })
  })
}
