// `npm run bench`: latchkey (built JS, production defaults) against a ceiling
// and against the peers users would pick instead (Better Auth; Express with
// jsonwebtoken), all measured in the same run. See bench/README.md for what each
// scenario does and how to read the table. Environment knobs (all optional):
//   BENCH_DURATION  seconds per measurement (5)     BENCH_REPS   repetitions (3)
//   BENCH_WARMUP    seconds of warm-up (2)          BENCH_ONLY   e.g. "1,2,9"
//   BENCH_KEEP=1    keep the temporary directory (server logs) after the run
//   BENCH_PEERS=off skip the peers (and their install on the first run)
//   For experiments (recorded in results.json, off by default):
//   BENCH_LATCHKEY_ENV  extra server environment, e.g. "HASH_CONCURRENCY=1,LOG_LEVEL=warn"
//   BENCH_NODE_ARGS     extra node flags for latchkey, e.g. "--max-semi-space-size=8"
//   PostgreSQL column (scenarios 1, 3, 4, 5) and baseline build (scenario 1):
//   BENCH_POSTGRES       server to create throw-away databases on
//                        (postgres://postgres@127.0.0.1:5432/postgres); "off" skips the column
//   BENCH_POSTGRES_ENV   extra environment of the PostgreSQL servers only, e.g. "REDIS_URL=redis://127.0.0.1:6379"
//   BENCH_BASELINE_DIST  another checkout's dist/latchkey.cjs, measured beside this build in scenario 1
//   Scenario 1 also measures a second server of this build with METRICS_TOKEN set (row `1m`): the
//   CPU cost of recording Prometheus metrics, interleaved with the server without them; and a third
//   with LOG_LEVEL=warn (row `1warn`): the cost of the access-log line.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { startNodeFlags } from '../scripts/start-node-flags.mjs'
import {
  BENCH_DIR,
  backendCpuDelta,
  backendCpuMs,
  CLI,
  connectPostgres,
  cpuMs,
  createDatabase,
  dropDatabase,
  freePort,
  getJson,
  median,
  postgresUrl,
  postJson,
  ROOT,
  readMemory,
  runLoad,
  sampleRss,
  signIn,
  startProcess,
  waitFor200,
} from './lib.mjs'
import { ensurePeersInstalled, PEERS, PEERS_DIR, peerPackageVersion } from './peers.mjs'
import { copyDataDir, ensureSeeded, OWNER, seedTasksPostgres } from './seed.mjs'

const DURATION = Number(process.env.BENCH_DURATION ?? 5)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2)
const REPS = Math.max(1, Number(process.env.BENCH_REPS ?? 3))
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined
const CONNECTIONS = 50
const COLD_STARTS = 7
const CLEANUP_WINDOW_S = 12
const PASSWORD = 'bench user passphrase 0'
/** An admin URL: the bench creates its own databases on that server, and drops them at the end. */
const POSTGRES = process.env.BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres'
/** The scenarios that also run against latchkey on PostgreSQL (rows `1pg`, `3pg`, ...). */
const POSTGRES_SCENARIOS = ['1', '3', '4', '5']
const BASELINE_CLI = process.env.BENCH_BASELINE_DIST ? path.resolve(process.env.BENCH_BASELINE_DIST) : undefined
/** The scenarios the peers run in (rows `1ba`, `1ex`, `2ba`, ...). */
const PEER_SCENARIOS = ['1', '2', '6']
const PEERS_ON = process.env.BENCH_PEERS !== 'off'
/** Scenario 1's open-loop row (`1ol`) offers this share of latchkey's saturated req/s. */
const OPEN_LOOP_SHARE = 0.5

const log = (message) => process.stderr.write(`${message}\n`)
const round = (value, digits = 1) => (Number.isFinite(value) ? Number(value.toFixed(digits)) : null)

if (!existsSync(CLI)) {
  log('dist/latchkey.cjs is missing: run `npm run build` first (npm run bench does).')
  process.exit(1)
}

const TMP = mkdtempSync(path.join(os.tmpdir(), 'latchkey-bench-'))
let dirCounter = 0
const tmpDir = (name) => {
  const dir = path.join(TMP, `${++dirCounter}-${name}`)
  mkdirSync(dir, { recursive: true })
  return dir
}

/** A clean environment: nothing from the caller's shell reaches latchkey's configuration. */
const BASE_ENV = Object.fromEntries(
  ['PATH', 'HOME', 'TMPDIR', 'TZ', 'LANG'].filter((name) => process.env[name]).map((name) => [name, process.env[name]]),
)
/** `NAME=value,NAME=value` -> { NAME: value }. */
const envPairs = (text = '') =>
  Object.fromEntries(
    text
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')).trim(), pair.slice(pair.indexOf('=') + 1).trim()]),
  )
/**
 * Production configuration (every default, OWASP argon2 included), except what
 * a loopback benchmark needs: plain http, loopback only, and rate limits high
 * enough that the limiter counts requests without refusing them.
 */
const EXTRA_ENV = envPairs(process.env.BENCH_LATCHKEY_ENV)
/** The node flags of `npm start` (package.json), so the server runs as it does in production. */
const START_NODE_ARGS = startNodeFlags()
const EXTRA_NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)
const NODE_ARGS = [...START_NODE_ARGS, ...EXTRA_NODE_ARGS]
const LATCHKEY_ENV = {
  ...BASE_ENV,
  HOST: '127.0.0.1',
  COOKIE_SECURE: 'false',
  RATE_LIMIT_MAX: '10000000',
  AUTH_RATE_LIMIT_MAX: '10000000',
  ...EXTRA_ENV,
}

const POSTGRES_EXTRA_ENV = envPairs(process.env.BENCH_POSTGRES_ENV)
/**
 * On PostgreSQL latchkey refuses to generate its secrets (every instance must
 * share them), so they come from the environment: fresh ones for each run.
 */
const POSTGRES_ENV = {
  JWT_SECRET: randomBytes(32).toString('base64url'),
  COOKIE_SECRET: randomBytes(32).toString('base64url'),
  DATA_ENCRYPTION_KEY: randomBytes(32).toString('base64url'),
  ...POSTGRES_EXTRA_ENV,
}

const running = new Set()

async function startLatchkey(name, { dataDir = tmpDir(name), env = {}, nodeArgs = [], cli = CLI } = {}) {
  const port = await freePort()
  const server = startProcess({
    port,
    args: [...NODE_ARGS, ...nodeArgs, cli, 'serve'],
    env: { ...LATCHKEY_ENV, DATA_DIR: dataDir, PORT: String(port), ...env },
    logFile: path.join(dataDir, 'server.log'),
    cwd: dataDir, // so no .env of the repository applies
  })
  running.add(server)
  await waitFor200(port, '/health', { child: server.child })
  return { ...server, dataDir, name }
}

async function startCeiling() {
  const port = await freePort()
  const dir = tmpDir('ceiling')
  const server = startProcess({
    port,
    args: [path.join(BENCH_DIR, 'ceiling.mjs')],
    env: { ...BASE_ENV, PORT: String(port) },
    logFile: path.join(dir, 'server.log'),
  })
  running.add(server)
  await waitFor200(port, '/', { child: server.child })
  return { ...server, name: 'ceiling' }
}

/**
 * A peer (bench/peers.mjs) on a data directory of its own, in the same clean
 * environment as latchkey plus NODE_ENV=production, as it would be deployed.
 */
async function startPeer(key) {
  const peer = PEERS[key]
  const port = await freePort()
  const dir = tmpDir(key)
  const server = startProcess({
    port,
    args: [path.join(PEERS_DIR, peer.script)],
    env: { ...BASE_ENV, NODE_ENV: 'production', PORT: String(port), DATA_DIR: dir },
    logFile: path.join(dir, 'server.log'),
    cwd: dir,
  })
  running.add(server)
  await waitFor200(port, '/health', { child: server.child })
  return { ...server, name: peer.label, key }
}

async function stop(server) {
  running.delete(server)
  await server.stop()
}

// PostgreSQL: one admin connection, and the databases this run made (dropped at the end).
const postgres = { admin: undefined, version: undefined, durability: undefined, failed: false, databases: new Set() }

/** A new, empty database `latchkey_bench_<pid>[_suffix]` on the BENCH_POSTGRES server. */
async function freshPostgresDatabase(suffix) {
  const name = `latchkey_bench_${process.pid}${suffix ? `_${suffix}` : ''}`
  await createDatabase(postgres.admin, name)
  postgres.databases.add(name)
  return { name, url: postgresUrl(POSTGRES, name) }
}

async function dropPostgresDatabase(name) {
  await dropDatabase(postgres.admin, name)
  postgres.databases.delete(name)
}

/**
 * Drops the databases of earlier runs that ended without cleaning up (killed):
 * named after a process that no longer exists. Only for a server on this
 * machine, where those process ids mean something.
 */
async function dropLeftoverDatabases() {
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(POSTGRES).hostname)) return
  const { rows } = await postgres.admin.query("select datname from pg_database where datname like 'latchkey_bench_%'")
  for (const { datname } of rows) {
    const pid = /^latchkey_bench_(\d+)(_tasks)?$/.exec(datname)?.[1]
    if (pid && Number(pid) !== process.pid && !existsSync(`/proc/${pid}`)) {
      log(`  dropping ${datname}, left over by an earlier run`)
      await dropDatabase(postgres.admin, datname)
    }
  }
}

/** latchkey serving `database` (from freshPostgresDatabase); `measure` also reads its backends' CPU. */
async function startLatchkeyOnPostgres(name, database) {
  const server = await startLatchkey(name, { env: { ...POSTGRES_ENV, DATABASE_URL: database.url } })
  return { ...server, postgresDatabase: database.name }
}

/** The PostgreSQL URL as results.json records it (no password). */
function redactedUrl(url) {
  const parsed = new URL(url)
  if (parsed.password) parsed.password = '***'
  return parsed.href
}

/** One measurement: runs the load jobs against `server` while sampling its memory. */
async function measure(server, jobs, { duration = DURATION, stopWhen } = {}) {
  const backends = server.postgresDatabase && (() => backendCpuMs(postgres.admin, server.postgresDatabase))
  const dbCpuBefore = backends && (await backends())
  const sampler = sampleRss(server.pid)
  const cpuBefore = cpuMs(server.pid)
  const results = await runLoad(
    { jobs: jobs.map((job) => ({ connections: CONNECTIONS, duration, port: server.port, ...job })) },
    { stopWhen },
  )
  const rss = sampler.stop()
  const cpu = cpuMs(server.pid) - cpuBefore
  // PostgreSQL's own CPU, apart: the backends serving this server's database.
  const dbCpu = backends ? backendCpuDelta(dbCpuBefore, await backends()) : Number.NaN
  const requests = Math.max(
    1,
    results.reduce((sum, r) => sum + r.total, 0),
  )
  for (const result of results) {
    result.cpuUsPerRequest = (cpu * 1000) / requests
    result.dbCpuUsPerRequest = (dbCpu * 1000) / requests
    const bad = result.total - result.ok + result.errors
    if (bad > 0.005 * Math.max(1, result.total)) {
      log(`  ! ${server.name} ${result.name}: ${bad} failed of ${result.total} (${JSON.stringify(result.statusCodes)})`)
    }
  }
  return { results, rss }
}

const summary = (result, rss) => ({
  rps: result.rps,
  p50: result.latency.p50,
  p99: result.latency.p99,
  ...(result.latency.p99_9 === undefined ? {} : { p99_9: result.latency.p99_9 }),
  max: result.latency.max,
  rss,
  cpuUs: result.cpuUsPerRequest,
  dbCpuUs: result.dbCpuUsPerRequest,
  ok: result.ok,
  failed: result.total - result.ok + result.errors,
})

/**
 * Warm-up, then `REPS` repetitions of every runner, the order rotating from one
 * repetition to the next (with two runners it alternates). `runners` maps a name
 * (`reference`, `subject`, and optionally `postgres`, `baseline`, `metrics`; an undefined
 * one is left out) to an async function `(seconds) => { rps, p50, p99, rss, ... }`.
 * Each repetition is `{ [name]: result }`.
 */
async function rotated(runners, { prepare } = {}) {
  const names = Object.keys(runners).filter((name) => runners[name])
  await prepare?.()
  for (const name of names) await runners[name](WARMUP)
  const reps = []
  for (let i = 0; i < REPS; i++) {
    const rep = {}
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length]
      await prepare?.()
      rep[name] = await runners[name](DURATION)
    }
    reps.push(rep)
  }
  return reps
}

/** The repetitions seen as (subject, reference) pairs: `subject` and `reference` name runners of `rotated`. */
const paired = (reps, subject = 'subject', reference = 'reference') =>
  reps.map((rep) => ({ subject: rep[subject], reference: rep[reference] }))

/**
 * Median row over repetitions; `ratio` per repetition is subject / reference
 * (none when the repetitions have no reference). With `cpu`, `cpuRatio` per
 * repetition is the reference's CPU per request / the subject's: like `ratio`,
 * above 1 when the subject does better.
 */
function rowOf(id, name, reps, { ratioOf = 'rps', reference = 'ceiling', notes, cpu = false } = {}) {
  const pick = (which, key) => reps.map((rep) => rep[which]?.[key])
  const referenced = reps.every((rep) => rep.reference)
  return {
    id,
    scenario: name,
    rps: round(median(pick('subject', 'rps'))),
    p50: median(pick('subject', 'p50')),
    p99: median(pick('subject', 'p99')),
    rss: round(median(pick('subject', 'rss'))),
    cpuUs: round(median(pick('subject', 'cpuUs')), 0),
    reference: referenced ? reference : undefined,
    referenceValue: referenced ? round(median(pick('reference', ratioOf)), 2) : null,
    ratio: referenced ? round(median(reps.map((rep) => rep.subject[ratioOf] / rep.reference[ratioOf])), 3) : null,
    ...(cpu && referenced
      ? {
          referenceCpuUs: round(median(pick('reference', 'cpuUs')), 0),
          cpuRatio: round(median(reps.map((rep) => rep.reference.cpuUs / rep.subject.cpuUs)), 3),
        }
      : {}),
    repetitions: reps.length,
    notes,
    raw: reps,
  }
}

/**
 * Row `<id>pg`: latchkey on PostgreSQL against latchkey on SQLite (the
 * scenario's subject), measured in the same repetitions; the ratio is
 * PostgreSQL req/s / SQLite req/s. `CPU us/req` is latchkey's process alone,
 * as for SQLite; the PostgreSQL backends' CPU comes on top (notes, `postgresCpuUs`).
 */
function postgresRowOf(row, reps, { notes } = {}) {
  const pairs = paired(reps, 'postgres', 'subject')
  const pgRow = rowOf(`${row.id}pg`, `${row.scenario}, PostgreSQL`, pairs, { reference: 'SQLite req/s' })
  pgRow.sqliteCpuUs = round(median(pairs.map((pair) => pair.reference.cpuUs)), 0)
  pgRow.cpuVsSqlite = round(median(pairs.map((pair) => pair.subject.cpuUs / pair.reference.cpuUs)), 3)
  pgRow.postgresCpuUs = round(median(pairs.map((pair) => pair.subject.dbCpuUs)), 0)
  pgRow.notes = [
    `latchkey CPU ${fmt(pgRow.cpuUs, 0)} us/req vs ${fmt(pgRow.sqliteCpuUs, 0)} on SQLite (x${fmt(pgRow.cpuVsSqlite, 2)})`,
    `PostgreSQL backends ${fmt(pgRow.postgresCpuUs, 0)} us/req on top`,
    notes,
  ]
    .filter(Boolean)
    .join('; ')
  return pgRow
}

/**
 * Row `1m`: scenario 1 against a server of this build with METRICS_TOKEN set
 * (Prometheus metrics recorded for every request, never scraped during the
 * measurement), in the same repetitions as the server without; the ratio is CPU
 * us/req with metrics / without.
 */
function metricsRowOf(reps) {
  const row = rowOf('1m', 'GET /users/me, access cookie, METRICS_TOKEN set', paired(reps, 'metrics', 'subject'), {
    ratioOf: 'cpuUs',
    reference: 'CPU us/req, metrics off',
  })
  row.metricsOffRps = round(median(reps.map((rep) => rep.subject.rps)))
  row.notes = `CPU us/req metrics off ${fmt(row.referenceValue, 0)}, on ${fmt(row.cpuUs, 0)}: x${fmt(row.ratio, 3)}; req/s off ${fmt(row.metricsOffRps, 0)}, on ${fmt(row.rps, 0)}`
  return row
}

/** Row `1base`: this build's CPU per request against the baseline build's (BENCH_BASELINE_DIST), same repetitions. */
function baselineRowOf(reps) {
  const row = rowOf('1base', 'GET /users/me, access cookie, vs baseline build', paired(reps, 'subject', 'baseline'), {
    ratioOf: 'cpuUs',
    reference: 'baseline CPU us/req',
  })
  row.baselineRps = round(median(reps.map((rep) => rep.baseline.rps)))
  row.baselineDist = BASELINE_CLI
  row.notes = `CPU us/req before (baseline) ${fmt(row.referenceValue, 0)}, after (this build) ${fmt(row.cpuUs, 0)}: x${fmt(row.ratio, 3)}; req/s before ${fmt(row.baselineRps, 0)}, after ${fmt(row.rps, 0)}`
  return row
}

// ----------------------------------------------------------------------------
// Scenarios

const scenarios = []
const scenario = (id, title, fn) => scenarios.push({ id: String(id), title, fn })

const ceilingRun = (ctx) => async (seconds) => {
  const { results, rss } = await measure(ctx.ceiling, [{ name: 'ceiling', path: '/' }], { duration: seconds })
  return summary(results[0], rss)
}

const jobRun = (server, job) => async (seconds) => {
  const { results, rss } = await measure(server, [job], { duration: seconds })
  return summary(results[0], rss)
}

/** Waits until every login queued on the server is done (the hash queue is FIFO). */
async function drainLogins(server, account) {
  await postJson(server.port, '/auth/login', { email: account.email, password: account.password })
}

/** GET /users/me with the access cookie of `user` (from signIn). */
const meCookieJob = (user) => ({
  name: 'me-cookie',
  path: '/users/me',
  headers: { cookie: `access_token=${user.cookies.access_token}` },
})

/**
 * Rows `<id>ba` and `<id>ex`: latchkey (the subject) against each peer that ran
 * in the same repetitions, as req/s latchkey / peer (`ratio`) and CPU per
 * request peer / latchkey (`cpuRatio`): above 1 where latchkey does better.
 */
function peerRowsOf(id, name, reps, { notes } = {}) {
  return Object.entries({ betterAuth: 'ba', express: 'ex' })
    .filter(([key]) => reps.every((rep) => rep[key]))
    .map(([key, suffix]) => {
      const peer = PEERS[key]
      const row = rowOf(`${id}${suffix}`, `${name}, vs ${peer.label}`, paired(reps, 'subject', key), {
        reference: `${peer.label} req/s`,
        cpu: true,
      })
      row.peer = { name: peer.label, packages: peerVersions(peer) }
      row.notes = [
        `${peer.label} ${fmt(row.referenceValue, 0)} req/s, ${fmt(row.referenceCpuUs, 0)} us CPU/req; latchkey ${fmt(row.rps, 0)} req/s, ${fmt(row.cpuUs, 0)} us/req`,
        notes?.(peer),
      ]
        .filter(Boolean)
        .join('; ')
      return row
    })
}

const peerVersions = (peer) => Object.fromEntries(peer.packages.map((name) => [name, peerPackageVersion(name)]))

/**
 * Row `1warn`: a second server of this build with LOG_LEVEL=warn (no access
 * line) against the ceiling, in scenario 1's repetitions; its notes give what
 * the access line costs, per repetition (CPU us/req at info - at warn) / at info.
 */
function logLevelRowOf(reps) {
  const row = rowOf('1warn', 'GET /users/me, access cookie, LOG_LEVEL=warn', paired(reps, 'warn'), { cpu: true })
  const info = median(reps.map((rep) => rep.subject.cpuUs))
  row.accessLineUs = round(median(reps.map((rep) => rep.subject.cpuUs - rep.warn.cpuUs)), 1)
  row.accessLineShare = round(median(reps.map((rep) => (rep.subject.cpuUs - rep.warn.cpuUs) / rep.subject.cpuUs)), 3)
  row.notes = `CPU us/req at info ${fmt(info, 0)}, at warn ${fmt(row.cpuUs, 0)}: the access line costs ${fmt(row.accessLineUs, 1)} us, ${fmt(row.accessLineShare * 100, 1)}% of a request's CPU`
  return row
}

/**
 * Row `1ol`: scenario 1 open-loop (bench/open-loop.mjs) at OPEN_LOOP_SHARE of
 * latchkey's saturated req/s of the same run, warm-up then REPS measurements.
 * Latency in fractions of a ms: p50, p99 and p99.9 of every 2xx answer. The
 * ceiling, offered the same rate in the same repetitions (alternating), shows
 * what this machine and the generator cost anyway (notes, `ceilingP99`).
 */
async function openLoopRowOf(ctx, job, saturatedRps) {
  const rate = Math.max(1, Math.round(saturatedRps * OPEN_LOOP_SHARE))
  const run = (server, serverJob) => async (seconds) => {
    const { results, rss } = await measure(server, [{ ...serverJob, openLoopRate: rate }], { duration: seconds })
    return { ...summary(results[0], rss), lagP99: results[0].lag.p99 }
  }
  const reps = await rotated({
    subject: run(ctx.main, job),
    ceiling: run(ctx.ceiling, { name: 'ceiling', path: '/' }),
  })
  for (const rep of reps) rep.reference = { rps: rate }
  const row = rowOf('1ol', `GET /users/me, access cookie, open loop at ${OPEN_LOOP_SHARE * 100}%`, reps, {
    reference: 'offered req/s',
  })
  const pick = (which, key) => round(median(reps.map((rep) => rep[which][key])), 2)
  Object.assign(row, {
    p50: pick('subject', 'p50'),
    p99: pick('subject', 'p99'),
    p99_9: pick('subject', 'p99_9'),
    max: pick('subject', 'max'),
    ceilingP50: pick('ceiling', 'p50'),
    ceilingP99: pick('ceiling', 'p99'),
    ceilingP99_9: pick('ceiling', 'p99_9'),
    openLoop: true,
  })
  row.notes = `offered ${rate} req/s (${OPEN_LOOP_SHARE * 100}% of row 1's ${fmt(saturatedRps, 0)}), answered ${fmt(row.rps, 0)}; latency ms p50 ${fmt(row.p50, 2)}, p99 ${fmt(row.p99, 2)}, p99.9 ${fmt(row.p99_9, 2)}, max ${fmt(row.max, 1)}; the ceiling at the same rate: p50 ${fmt(row.ceilingP50, 2)}, p99 ${fmt(row.ceilingP99, 2)}, p99.9 ${fmt(row.ceilingP99_9, 2)}; generator's own lag p99 ${fmt(pick('subject', 'lagP99'), 2)} ms`
  return row
}

/** A peer's `GET /users/me` job for `user` (PEERS[...].signIn): with its cookie, or its bearer token. */
const peerMeJob = (user, how) => ({
  name: `me-${how}`,
  path: '/users/me',
  headers: how === 'cookie' ? { cookie: user.cookie } : { authorization: `Bearer ${user.bearer}` },
})

/** Runners for every peer that started: `{ betterAuth, express }`, each `(seconds) => summary`. */
const peerRunners = (ctx, makeRun) =>
  Object.fromEntries(Object.entries(ctx.peers).map(([key, server]) => [key, makeRun(server)]))

scenario(1, 'GET /users/me (cookie)', async (ctx) => {
  const reps = await rotated({
    reference: ceilingRun(ctx),
    subject: jobRun(ctx.main, meCookieJob(ctx.user)),
    warn: ctx.warn && jobRun(ctx.warn, meCookieJob(ctx.warn.user)),
    ...peerRunners(ctx, (peer) => jobRun(peer, peerMeJob(peer.user, 'cookie'))),
    postgres: ctx.pg && jobRun(ctx.pg, meCookieJob(ctx.pg.user)),
    baseline: ctx.baseline && jobRun(ctx.baseline, meCookieJob(ctx.baseline.user)),
    metrics: ctx.metrics && jobRun(ctx.metrics, meCookieJob(ctx.metrics.user)),
  })
  const row = rowOf('1', 'GET /users/me, access cookie', paired(reps), { cpu: true })
  return [
    row,
    ctx.warn && logLevelRowOf(reps),
    ...peerRowsOf('1', 'GET /users/me, cookie', reps),
    await openLoopRowOf(ctx, meCookieJob(ctx.user), row.rps),
    ctx.pg && postgresRowOf(row, reps),
    ctx.baseline && baselineRowOf(reps),
    ctx.metrics && metricsRowOf(reps),
  ]
})

scenario(2, 'GET /users/me (bearer)', async (ctx) => {
  const job = { name: 'me-bearer', path: '/users/me', headers: { authorization: `Bearer ${ctx.user.accessToken}` } }
  const reps = await rotated({
    reference: ceilingRun(ctx),
    subject: jobRun(ctx.main, job),
    ...peerRunners(ctx, (peer) => jobRun(peer, peerMeJob(peer.user, 'bearer'))),
  })
  return [
    rowOf('2', 'GET /users/me, bearer', paired(reps), { cpu: true }),
    ...peerRowsOf('2', 'GET /users/me, bearer', reps, {
      notes: (peer) => (peer === PEERS.betterAuth ? 'its bearer plugin: the session token, one database read' : ''),
    }),
  ]
})

/** The load job of scenario 3 on `server`, after checking that the owner's first page has 20 tasks. */
async function tasksPageJob(server) {
  const owner = await signIn(server.port, { ...OWNER, login: true })
  const probe = await getJson(server.port, '/tasks?limit=20', { authorization: `Bearer ${owner.accessToken}` })
  if (probe.status !== 200) throw new Error(`GET /tasks answered ${probe.status}: is the route there yet?`)
  const page = probe.json
  if (page.items?.length !== 20) throw new Error(`GET /tasks?limit=20 returned ${page.items?.length} items`)
  return {
    name: 'tasks-page',
    path: '/tasks?limit=20',
    headers: { cookie: `access_token=${owner.cookies.access_token}` },
  }
}

/** latchkey on a fresh PostgreSQL database holding scenario 3's tasks; undefined (and a note) if that fails. */
async function startTasksOnPostgres(ctx) {
  if (!postgres.admin || postgres.failed) return undefined
  let server
  try {
    const database = await freshPostgresDatabase('tasks')
    const env = { ...LATCHKEY_ENV, ...POSTGRES_ENV, DATABASE_URL: database.url }
    await seedTasksPostgres(tmpDir('tasks-pg-seed'), env, log)
    const size = (await postgres.admin.query('select pg_database_size($1) as bytes', [database.name])).rows[0].bytes
    server = await startLatchkeyOnPostgres('tasks-pg', database)
    return { server, job: await tasksPageJob(server), size: Number(size) }
  } catch (error) {
    if (server) await stop(server)
    ctx.notMeasured['3pg'] = error.message
    log(`    PostgreSQL skipped: ${error.message}`)
    return undefined
  }
}

scenario(3, 'GET /tasks?limit=20, 1M tasks', async (ctx) => {
  const seeded = await ensureSeeded('tasks', LATCHKEY_ENV, log)
  // The same owner and page in a table of 1,000 tasks: what a page costs apart from the table's size.
  const small = await ensureSeeded('tasks-small', LATCHKEY_ENV, log)
  const dataDir = copyDataDir(seeded.dir, tmpDir('tasks'))
  const server = await startLatchkey('tasks', { dataDir })
  const smallServer = await startLatchkey('tasks-small', { dataDir: copyDataDir(small.dir, tmpDir('tasks-small')) })
  let pg
  try {
    const job = await tasksPageJob(server)
    const smallJob = await tasksPageJob(smallServer)
    pg = await startTasksOnPostgres(ctx)
    const reps = await rotated({
      reference: jobRun(smallServer, smallJob),
      subject: jobRun(server, job),
      postgres: pg && jobRun(pg.server, pg.job),
    })
    const row = rowOf('3', 'GET /tasks?limit=20 (owner of 10k of 1M tasks)', paired(reps), {
      reference: 'same page, 1,000 tasks req/s',
      cpu: true,
      notes: `database ${(statSync(path.join(dataDir, 'latchkey.db')).size / 2 ** 20).toFixed(0)} MiB; the 1,000-task one (owner of 100) ${(statSync(path.join(smallServer.dataDir, 'latchkey.db')).size / 2 ** 20).toFixed(1)} MiB`,
    })
    return [row, pg && postgresRowOf(row, reps, { notes: `database ${(pg.size / 2 ** 20).toFixed(0)} MiB` })]
  } finally {
    await stop(server)
    await stop(smallServer)
    if (pg) {
      await stop(pg.server)
      await dropPostgresDatabase(pg.server.postgresDatabase)
    }
  }
})

scenario(4, 'POST /tasks', async (ctx) => {
  /** The load job on `server` as `user`, after one probe write. */
  const createTaskJob = async (server, user) => {
    const authorization = `Bearer ${user.accessToken}`
    const check = await postJson(server.port, '/tasks', { title: 'probe' }, { authorization })
    if (check.status !== 201) throw new Error(`POST /tasks answered ${check.status}: is the route there yet?`)
    return {
      name: 'create-task',
      method: 'POST',
      path: '/tasks',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Benchmark task: buy milk' }),
    }
  }
  // No ceiling: a durable write against a route that does nothing says nothing (it was 0.04).
  const reps = await rotated({
    subject: jobRun(ctx.main, await createTaskJob(ctx.main, ctx.user)),
    postgres: ctx.pg && jobRun(ctx.pg, await createTaskJob(ctx.pg, ctx.pg.user)),
  })
  const row = rowOf('4', 'POST /tasks {title} (durable write)', paired(reps))
  return [row, ctx.pg && postgresRowOf(row, reps, { notes: `PostgreSQL ${postgres.durability}` })]
})

scenario(5, 'POST /auth/refresh', async (ctx) => {
  const account = { email: 'refresh@bench.invalid', password: PASSWORD }
  // Fresh sessions for every measurement: one per connection, each rotating its own token.
  const freshSessions = async (server) => {
    const sessions = []
    for (let i = 0; i < CONNECTIONS; i += 4) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(4, CONNECTIONS - i) }, () => signIn(server.port, { ...account, login: true })),
      )
      for (const signedIn of batch) {
        sessions.push({ access_token: signedIn.cookies.access_token, refresh_token: signedIn.cookies.refresh_token })
      }
    }
    return sessions
  }
  const refreshRun = async (server) => {
    await signIn(server.port, account)
    return async (seconds) => {
      const sessions = await freshSessions(server)
      const { results, rss } = await measure(
        server,
        [{ name: 'refresh', method: 'POST', path: '/auth/refresh', headers: {}, sessions }],
        { duration: seconds },
      )
      return summary(results[0], rss)
    }
  }
  // No ceiling, as for scenario 4 (it was 0.01).
  const reps = await rotated({
    subject: await refreshRun(ctx.main),
    postgres: ctx.pg && (await refreshRun(ctx.pg)),
  })
  const failedNote = (which) => {
    const failed = reps.reduce((sum, rep) => sum + rep[which].failed, 0)
    return failed ? `${failed} refreshes failed` : 'every refresh presented the current token and got 200'
  }
  const row = rowOf('5', 'POST /auth/refresh (real rotation, 50 sessions)', paired(reps), {
    notes: failedNote('subject'),
  })
  return [row, ctx.pg && postgresRowOf(row, reps, { notes: failedNote('postgres') })]
})

/** The server's own HASH_CONCURRENCY (its default, unless the environment sets one), from src/config.ts. */
async function serverHashConcurrency() {
  const { tsImport } = await import('tsx/esm/api')
  const { loadConfig } = await tsImport('../src/config.ts', import.meta.url)
  const dir = tmpDir('config')
  return loadConfig({ env: { ...LATCHKEY_ENV, DATA_DIR: dir }, cwd: dir }).hashConcurrency
}

/** POST /auth/login with one account's credentials, as a load job. */
const loginJob = (account) => ({
  name: 'login',
  method: 'POST',
  path: '/auth/login',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(account),
})

/**
 * Scenario 6's connections, for every server: fewer than latchkey's hash queue
 * (HASH_QUEUE_MAX, 32), so none is refused, and enough to keep each server's
 * hashing busy (latchkey one hash at a time, Better Auth's 4 pool threads,
 * bcryptjs on the Express server's event loop). With 50, the 18 over latchkey's
 * queue got 503 at once and sent again, a busy loop that took CPU from the
 * hashing, and the Express server's 50 interleaved hashes all finished together,
 * seconds apart: a 5 s window counted 0, 50 or 100. Scenario 7 keeps 50.
 */
const LOGIN_CONNECTIONS = 8

scenario(6, 'POST /auth/login vs raw argon2', async (ctx) => {
  const account = { email: 'login@bench.invalid', password: PASSWORD }
  await signIn(ctx.main.port, account)
  const concurrency = await serverHashConcurrency()
  const reference = async (seconds) => {
    const output = execFileSync(process.execPath, [path.join(BENCH_DIR, 'argon2-raw.mjs')], {
      env: { ...BASE_ENV, HASH_CONCURRENCY: String(concurrency), DURATION_MS: String(seconds * 1000) },
      encoding: 'utf8',
    })
    const { rate } = JSON.parse(output)
    return { rps: rate, p50: Number.NaN, p99: Number.NaN, rss: Number.NaN }
  }
  const job = { ...loginJob(account), connections: LOGIN_CONNECTIONS }
  const subject = async (seconds) => {
    const result = await jobRun(ctx.main, job)(seconds)
    await drainLogins(ctx.main, account)
    return result
  }
  // Each peer: its own sign-in route, and a last login after the measurement to drain its queue.
  for (const server of Object.values(ctx.peers)) await PEERS[server.key].signIn(server.port, account)
  const peerLogin = (server) => async (seconds) => {
    const peer = PEERS[server.key]
    const result = await jobRun(server, { ...job, path: peer.loginPath })(seconds)
    await peer.signIn(server.port, { ...account, login: true })
    return result
  }
  const reps = await rotated({ reference, subject, ...peerRunners(ctx, peerLogin) })
  const latchkeyHash = `argon2id m=19456 KiB t=2 p=1, ${concurrency} at once`
  return [
    rowOf('6', 'POST /auth/login (argon2id 19 MiB, t=2)', paired(reps), {
      reference: `argon2.hash/s, ${concurrency} at once`,
    }),
    ...peerRowsOf('6', 'POST login', reps, { notes: (peer) => `hash: ${peer.hash}; latchkey ${latchkeyHash}` }),
  ]
})

scenario(7, 'GET /users/me while logins hammer', async (ctx) => {
  const account = { email: 'mixed@bench.invalid', password: PASSWORD }
  await signIn(ctx.main.port, account)
  const me = meCookieJob(ctx.user)
  const login = loginJob(account)
  const alone = jobRun(ctx.main, me)
  const mixed = async (seconds) => {
    const { results, rss } = await measure(ctx.main, [me, login], { duration: seconds })
    await drainLogins(ctx.main, account)
    return { ...summary(results[0], rss), loginRps: results[1].rps, loginP99: results[1].latency.p99 }
  }
  const reps = await rotated({ reference: alone, subject: mixed })
  const row = rowOf('7', 'GET /users/me + 50 conns of POST /auth/login', reps, {
    ratioOf: 'p99',
    reference: 'p99 of /users/me alone (ms)',
  })
  row.notes = `logins meanwhile: ${round(median(reps.map((rep) => rep.subject.loginRps)))}/s; /users/me alone: ${round(
    median(reps.map((rep) => rep.reference.rps)),
  )} req/s`
  return row
})

/** Cron pattern (seconds field first) that fires once, `secondsAhead` from now, local time. */
function cronAt(secondsAhead) {
  const at = new Date(Date.now() + secondsAhead * 1000)
  at.setMilliseconds(0)
  return { pattern: `${at.getSeconds()} ${at.getMinutes()} ${at.getHours()} ${at.getDate()} * *`, at: at.getTime() }
}

/** Resolves the `session cleanup done` log entry once it appears (reading only new bytes, bounded). */
async function cleanupDone(logFile, timeoutMs) {
  const start = Date.now()
  const fd = openSync(logFile, 'r')
  let offset = 0
  let pending = ''
  try {
    while (Date.now() - start < timeoutMs) {
      const chunk = Buffer.alloc(1 << 20)
      const bytes = readSync(fd, chunk, 0, chunk.length, offset)
      offset += bytes
      const text = pending + chunk.toString('utf8', 0, bytes)
      const end = text.lastIndexOf('\n')
      pending = text.slice(end + 1)
      let at = text.indexOf('session cleanup')
      while (at !== -1 && at < end) {
        const line = text.slice(text.lastIndexOf('\n', at) + 1, text.indexOf('\n', at))
        const entry = JSON.parse(line)
        if (entry.msg === 'session cleanup done') return entry
        if (entry.msg === 'session cleanup failed') throw new Error(`cleanup failed: ${line}`)
        at = text.indexOf('session cleanup', at + 1)
      }
      if (bytes < chunk.length) await sleep(100)
    }
  } finally {
    closeSync(fd)
  }
  throw new Error(`cleanup not done within ${timeoutMs / 1000} s`)
}

/** Rows left in a data directory's database, read beside the running server (WAL readers never block). */
function countRows(dataDir) {
  const db = new Database(path.join(dataDir, 'latchkey.db'), { readonly: true })
  try {
    return {
      sessions: db.prepare('select count(*) as n from sessions').get().n,
      refreshTokens: db.prepare('select count(*) as n from refresh_tokens').get().n,
    }
  } finally {
    db.close()
  }
}

scenario(8, 'Cleanup of 1M expired sessions under load', async () => {
  const seeded = await ensureSeeded('sessions', LATCHKEY_ENV, log)
  const reps = []
  const budget = 50 // ms: the longest stall the issue allows
  for (let i = 0; i < REPS; i++) {
    const dataDir = copyDataDir(seeded.dir, tmpDir('cleanup'))
    // On tmpfs when there is one: a write there never waits for the disk, so the
    // probe's own writes cannot stall the loop it measures.
    const eldFile = path.join(
      existsSync('/dev/shm') ? '/dev/shm' : dataDir,
      `latchkey-bench-eld-${process.pid}-${i}.jsonl`,
    )
    // Fires once, a few seconds after start: time to sign in and warm up first.
    const cron = cronAt(6)
    const server = await startLatchkey('cleanup', {
      dataDir,
      env: { CLEANUP_CRON: cron.pattern, BENCH_ELD_FILE: eldFile },
      nodeArgs: [`--import=${new URL('./eventloop-probe.mjs', import.meta.url).href}`],
    })
    try {
      const user = await signIn(server.port, { email: 'cleanup@bench.invalid', password: PASSWORD })
      const job = meCookieJob(user)
      const warmStart = Date.now()
      await measure(server, [job], { duration: WARMUP })
      const warmEnd = Date.now()
      const wait = cron.at - Date.now() - 250
      if (wait < 0) log('  ! cleanup fired before the warm-up ended; the window starts late')
      await sleep(Math.max(0, wait))
      const windowStart = Date.now()
      // The window: from just before the cleanup fires until it is done, at most CLEANUP_WINDOW_S.
      const done = cleanupDone(server.logFile, (CLEANUP_WINDOW_S + 2) * 1000).catch(() => undefined)
      const { results, rss } = await measure(server, [job], {
        duration: CLEANUP_WINDOW_S,
        stopWhen: done.then(() => sleep(250)),
      })
      const windowEnd = Date.now()
      const entry = await Promise.race([done, sleep(0)])
      const left = countRows(dataDir)
      const samples = readFileSync(eldFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
      const longest = (from, to) =>
        Math.max(0, ...samples.filter((sample) => sample.t > from && sample.t <= to).map((sample) => sample.max))
      // Samples cover the 250 ms before their time stamp.
      const stall = longest(windowStart + 250, windowEnd + 250)
      // The same load without the cleanup: what this machine shows anyway (other processes, GC).
      const stallWithoutCleanup = longest(warmStart + 500, warmEnd)
      const deleted = seeded.meta.sessions - (left.sessions - 1) // the signed-in session stays
      const seconds = ((entry?.time ?? windowEnd) - cron.at) / 1000
      reps.push({
        subject: {
          ...summary(results[0], rss),
          stall,
          stallWithoutCleanup,
          finished: Boolean(entry),
          sessionsDeleted: deleted,
          refreshTokensLeft: left.refreshTokens - 1,
          cleanupSeconds: seconds,
          sessionsPerSecond: deleted / seconds,
        },
        reference: { stall: budget },
      })
      log(
        `  rep ${i + 1}: ${entry ? 'finished' : 'still running'} after ${seconds.toFixed(1)} s, ${deleted} sessions deleted (${Math.round(deleted / seconds)}/s), longest stall ${stall} ms (${stallWithoutCleanup} ms in the warm-up without cleanup), /users/me p99 ${results[0].latency.p99} ms`,
      )
    } finally {
      // The copy is thrown away: no need to wait for a graceful close (and its WAL checkpoint).
      server.child.kill('SIGKILL')
      await stop(server)
      rmSync(dataDir, { recursive: true, force: true })
      rmSync(eldFile, { force: true })
    }
  }
  const row = rowOf('8', 'GET /users/me during cleanup of 1M sessions', reps, {
    ratioOf: 'stall',
    reference: 'stall budget (ms)',
  })
  const worst = Math.max(...reps.map((rep) => rep.subject.stall))
  const rate = median(reps.map((rep) => rep.subject.sessionsPerSecond))
  const finished = reps.every((rep) => rep.subject.finished)
  row.stall = median(reps.map((rep) => rep.subject.stall))
  const floor = median(reps.map((rep) => rep.subject.stallWithoutCleanup))
  row.notes = `longest event-loop stall ${row.stall} ms (median of reps; worst ${worst} ms; ${floor} ms under the same load without cleanup); cleanup ${
    finished
      ? `finished in ${round(median(reps.map((rep) => rep.subject.cleanupSeconds)))} s`
      : `measured for its first ${CLEANUP_WINDOW_S} s: ${Math.round(rate)} sessions/s, all 1M in ~${Math.round(seeded.meta.sessions / rate)} s`
  }; max /users/me latency ${median(reps.map((rep) => rep.subject.max))} ms`
  return row
})

/**
 * The single binary (scripts/build-binary.ts), built into the bench's temporary
 * directory (dist/latchkey is left alone) by the node that runs the bench.
 */
async function buildBinaryForBench() {
  const { tsImport } = await import('tsx/esm/api')
  const { buildBinary } = await tsImport('../scripts/build-binary.ts', import.meta.url)
  const { file, seconds } = await buildBinary({ output: path.join(tmpDir('binary'), 'latchkey'), log: () => {} })
  log(`    single binary built in ${seconds.toFixed(0)} s`)
  return file
}

/** `npm start` as typed, when the bench runs under npm (npm_execpath) and no .env of the repository would apply. */
function npmStartArgs() {
  const npmCli = process.env.npm_execpath
  if (!npmCli?.endsWith('.js') || existsSync(path.join(ROOT, '.env'))) return undefined
  return [npmCli, 'start', '--silent']
}

scenario(9, 'Cold start to first 200 on /health', async (ctx) => {
  const dataDir = tmpDir('cold-start')
  const env = { ...LATCHKEY_ENV, DATA_DIR: dataDir, LATCHKEY_NATIVE_CACHE_DIR: tmpDir('native-cache') }
  const binary = await buildBinaryForBench().catch((error) => {
    ctx.notMeasured['9bin'] = `single binary: ${error.message}`
    return undefined
  })
  const npmStart = npmStartArgs()
  if (!npmStart) ctx.notMeasured['9npm'] = '`npm start` as typed: the bench does not run under npm, or a .env is there'
  const kinds = {
    // What `npm start` runs once dist/ is fresh: node with its flags on the bundle.
    subject: { args: [...NODE_ARGS, CLI, 'serve'] },
    binary: binary && { command: binary, args: ['serve'] },
    // The whole of `npm start`: npm, its staleness check (scripts/build-if-stale.mjs), then the above.
    npm: npmStart && { args: npmStart, cwd: ROOT, group: true },
  }
  const startOnce = async (name) => {
    const port = await freePort()
    const { command, args, cwd = dataDir, group } = kinds[name]
    const started = performance.now()
    const server = startProcess({
      command,
      args,
      env: { ...env, PORT: String(port) },
      logFile: path.join(dataDir, `${name}.log`),
      cwd,
      group,
    })
    running.add(server)
    try {
      await waitFor200(port, '/health', { child: server.child, intervalMs: 1 })
      return performance.now() - started
    } finally {
      await stop(server)
    }
  }
  const names = Object.keys(kinds).filter((name) => kinds[name])
  // The first start migrates and writes the secrets (the binary's also unpacks its addons): not measured.
  for (const name of names) await startOnce(name)
  const reps = []
  for (let i = 0; i < COLD_STARTS; i++) {
    const rep = {}
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length]
      rep[name] = { startMs: await startOnce(name) }
    }
    reps.push(rep)
  }
  const startRow = (id, title, which) => {
    const row = rowOf(id, title, paired(reps, which))
    row.startMs = round(median(reps.map((rep) => rep[which].startMs)))
    row.notes = `${row.startMs} ms (median of ${COLD_STARTS}; min ${round(Math.min(...reps.map((rep) => rep[which].startMs)))}, max ${round(Math.max(...reps.map((rep) => rep[which].startMs)))})`
    return row
  }
  return [
    startRow('9', 'cold start: node dist/latchkey.cjs serve (npm start)', 'subject'),
    binary && startRow('9bin', 'cold start: single binary dist/latchkey serve', 'binary'),
    npmStart && startRow('9npm', 'cold start: `npm start` as typed (npm + staleness check)', 'npm'),
  ]
})

// ----------------------------------------------------------------------------
// Targets, table, results.json

const TARGETS = {
  1: {
    text: '>= 0.5 of ceiling, req/s and CPU; RSS <= 120 MiB',
    check: (r) => r.ratio >= 0.5 && r.cpuRatio >= 0.5 && r.rss <= 120,
  },
  '1warn': { text: '>= 0.6 of ceiling, req/s and CPU', check: (r) => r.ratio >= 0.6 && r.cpuRatio >= 0.6 },
  '1ba': { text: '>= 8 x Better Auth req/s', check: (r) => r.ratio >= 8 },
  '1ex': { text: '>= 3.5 x Express req/s', check: (r) => r.ratio >= 3.5 },
  '1ol': { text: 'p99 <= 5 ms', check: (r) => r.p99 <= 5 },
  '1pg': { text: '>= 0.6 of SQLite', check: (r) => r.ratio >= 0.6 },
  '1base': { text: 'CPU/req <= 1.10 x baseline', check: (r) => r.ratio <= 1.1 },
  '1m': { text: 'CPU/req <= 1.03 x metrics off', check: (r) => r.ratio <= 1.03 },
  2: { text: '>= 0.35 of ceiling', check: (r) => r.ratio >= 0.35 },
  '2ba': { text: '>= 8 x Better Auth req/s', check: (r) => r.ratio >= 8 },
  '2ex': { text: '>= 3.5 x Express req/s', check: (r) => r.ratio >= 3.5 },
  3: {
    text: '>= 0.9 of 1,000 tasks; req/s >= 0.5 x scenario 1',
    check: (r, rows) => r.ratio >= 0.9 && rows['1'] && r.rps >= 0.5 * rows['1'].rps,
  },
  6: { text: '>= 0.9 of raw argon2', check: (r) => r.ratio >= 0.9 },
  7: { text: 'p99 <= 2 x alone', check: (r) => r.ratio <= 2 },
  8: { text: 'no stall > 50 ms', check: (r) => Math.max(...r.raw.map((rep) => rep.subject.stall)) <= 50 },
}

/** The short commit of the checkout holding `dir`, with `+changes` when its work tree differs from it. */
function commitOf(dir) {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim()
    const changed = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: dir,
      encoding: 'utf8',
    })
    return changed.trim() ? `${commit}+changes` : commit
  } catch {
    return undefined
  }
}

function machineInfo() {
  const cpus = os.cpus()
  const commit = commitOf(ROOT)
  return {
    cpu: cpus[0]?.model,
    cpus: cpus.length,
    availableParallelism: os.availableParallelism(),
    memoryGiB: round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadAverage: os.loadavg().map((value) => round(value, 2)),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    commit,
  }
}

const fmt = (value, digits = 1) =>
  value === null || value === undefined || Number.isNaN(value) || value === Number.POSITIVE_INFINITY
    ? '-'
    : typeof value === 'number'
      ? value.toFixed(digits)
      : String(value)

function printTable(rows) {
  const header = [
    '#',
    'scenario',
    'req/s',
    'p50 ms',
    'p99 ms',
    'RSS MiB',
    'CPU us/req',
    'reference',
    'ref value',
    'ratio',
    'CPU ratio',
    'target',
    'ok',
  ]
  const lines = rows.map((row) => [
    row.id,
    row.scenario,
    fmt(row.rps, 0),
    // Open loop: fractions of a ms. Cold start: the median start in the p50 column.
    fmt(row.startMs ?? row.p50, row.openLoop ? 2 : 0),
    fmt(row.p99, row.openLoop ? 2 : 0),
    fmt(row.rss, 0),
    fmt(row.cpuUs, 0),
    row.reference ?? '-',
    fmt(row.referenceValue, row.referenceValue >= 100 ? 0 : 1),
    fmt(row.ratio, 2),
    fmt(row.cpuRatio, 2),
    row.target ?? '',
    row.pass === undefined ? '' : row.pass ? 'yes' : 'NO',
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => String(line[i]).length)))
  const format = (cells) =>
    cells
      .map((cell, i) => String(cell).padEnd(widths[i]))
      .join('  ')
      .trimEnd()
  process.stdout.write(`${format(header)}\n${format(widths.map((w) => '-'.repeat(w)))}\n`)
  for (const line of lines) process.stdout.write(`${format(line)}\n`)
  for (const row of rows) if (row.notes) process.stdout.write(`  ${row.id}: ${row.notes}\n`)
}

async function main() {
  const started = Date.now()
  const machine = machineInfo()
  log(
    `latchkey bench: ${DURATION} s per measurement, ${WARMUP} s warm-up, ${REPS} repetitions, ${CONNECTIONS} connections`,
  )
  log(`machine: ${machine.cpu} x${machine.cpus}, node ${machine.node}; temp ${TMP}`)
  const selected = (id) => !ONLY || ONLY.has(id)
  const account = { email: 'me@bench.invalid', password: PASSWORD }
  const ceiling = await startCeiling()
  const main = await startLatchkey('main')
  const user = await signIn(main.port, account)
  const errors = {}
  const ctx = { ceiling, main, user, notMeasured: errors }

  const postgresScenarios = POSTGRES_SCENARIOS.filter(selected)
  if (POSTGRES !== 'off' && postgresScenarios.length > 0) {
    try {
      postgres.admin = await connectPostgres(POSTGRES)
      postgres.version = (await postgres.admin.query('show server_version')).rows[0].server_version
      const { rows } = await postgres.admin.query(
        "select name, setting from pg_settings where name in ('fsync', 'synchronous_commit')",
      )
      postgres.durability = rows.map(({ name, setting }) => `${name}=${setting}`).join(', ')
      log(`PostgreSQL ${postgres.version} at ${redactedUrl(POSTGRES)}`)
      await dropLeftoverDatabases()
      if (postgresScenarios.some((id) => id !== '3')) {
        ctx.pg = await startLatchkeyOnPostgres('main-pg', await freshPostgresDatabase())
        ctx.pg.user = await signIn(ctx.pg.port, account)
      }
    } catch (error) {
      ctx.pg = undefined
      postgres.failed = true
      for (const id of postgresScenarios) errors[`${id}pg`] = `PostgreSQL: ${error.message}`
      log(`PostgreSQL column skipped: ${error.message}`)
    }
  }
  if (selected('1')) {
    // The same build with Prometheus metrics on (a token that only turns them on: nothing scrapes).
    ctx.metrics = await startLatchkey('main-metrics', { env: { METRICS_TOKEN: randomBytes(32).toString('base64url') } })
    ctx.metrics.user = await signIn(ctx.metrics.port, account)
  }
  if (selected('1')) {
    // The same build logging at warn: no access line (row `1warn`).
    ctx.warn = await startLatchkey('main-warn', { env: { LOG_LEVEL: 'warn' } })
    ctx.warn.user = await signIn(ctx.warn.port, account)
  }
  ctx.peers = {}
  if (PEERS_ON && PEER_SCENARIOS.some(selected)) {
    try {
      ensurePeersInstalled(log)
      for (const key of Object.keys(PEERS)) {
        const server = await startPeer(key)
        ctx.peers[key] = server
        server.user = await PEERS[key].signIn(server.port, account)
      }
    } catch (error) {
      for (const server of Object.values(ctx.peers)) await stop(server)
      ctx.peers = {}
      for (const id of PEER_SCENARIOS.filter(selected)) errors[`${id}ba/${id}ex`] = `peers: ${error.message}`
      log(`peers skipped: ${error.message}`)
    }
  }
  if (BASELINE_CLI && selected('1')) {
    try {
      if (!existsSync(BASELINE_CLI)) throw new Error(`${BASELINE_CLI} does not exist`)
      ctx.baseline = await startLatchkey('baseline', { cli: BASELINE_CLI })
      ctx.baseline.user = await signIn(ctx.baseline.port, account)
      log(`baseline build: ${BASELINE_CLI} (${commitOf(path.dirname(BASELINE_CLI)) ?? 'commit unknown'})`)
    } catch (error) {
      ctx.baseline = undefined
      errors['1base'] = `baseline build: ${error.message}`
      log(`baseline skipped: ${error.message}`)
    }
  }

  const rows = {}
  for (const { id, title, fn } of scenarios) {
    if (!selected(id)) continue
    const t0 = Date.now()
    log(`[${id}] ${title}`)
    try {
      // A scenario gives one row, or several (its PostgreSQL and baseline rows).
      for (const row of [await fn(ctx)].flat()) if (row) rows[row.id] = row
      log(`    ${((Date.now() - t0) / 1000).toFixed(0)} s`)
    } catch (error) {
      errors[id] = error.message
      log(`    skipped: ${error.message}`)
    }
  }
  const mainMemory = readMemory(main.pid)
  for (const server of [...running]) await stop(server)

  // By scenario number, each scenario's extra rows (`1base`, `1pg`) after it.
  const ordered = Object.values(rows).sort(
    (a, b) => parseInt(a.id, 10) - parseInt(b.id, 10) || a.id.localeCompare(b.id),
  )
  for (const row of ordered) {
    const target = TARGETS[row.id]
    if (target) {
      row.target = target.text
      row.pass = Boolean(target.check(row, rows))
    }
  }
  process.stdout.write('\n')
  printTable(ordered)
  for (const [id, message] of Object.entries(errors)) process.stdout.write(`  ${id}: not measured: ${message}\n`)
  machine.loadAverageEnd = os.loadavg().map((value) => round(value, 2))
  process.stdout.write(
    `load average (1, 5, 15 min) at start ${machine.loadAverage.join(' ')}, at end ${machine.loadAverageEnd.join(' ')} on ${machine.cpus} cores\n`,
  )

  const results = {
    startedAt: new Date(started).toISOString(),
    seconds: Math.round((Date.now() - started) / 1000),
    machine,
    settings: {
      durationS: DURATION,
      warmupS: WARMUP,
      repetitions: REPS,
      connections: CONNECTIONS,
      loginConnections: LOGIN_CONNECTIONS,
      extraLatchkeyEnv: EXTRA_ENV,
      startNodeArgs: START_NODE_ARGS,
      extraNodeArgs: EXTRA_NODE_ARGS,
      postgres:
        postgres.version === undefined
          ? null
          : {
              url: redactedUrl(POSTGRES),
              version: postgres.version,
              durability: postgres.durability,
              extraEnv: POSTGRES_EXTRA_ENV,
            },
      baseline: ctx.baseline ? { dist: BASELINE_CLI, commit: commitOf(path.dirname(BASELINE_CLI)) } : null,
      peers: Object.fromEntries(
        Object.keys(ctx.peers).map((key) => [
          key,
          { name: PEERS[key].label, packages: peerVersions(PEERS[key]), passwordHash: PEERS[key].hash },
        ]),
      ),
      openLoopShare: OPEN_LOOP_SHARE,
    },
    mainServerMemoryMiB: { rss: round(mainMemory.rss), peak: round(mainMemory.hwm) },
    scenarios: ordered,
    notMeasured: errors,
  }
  const file = path.join(BENCH_DIR, 'results.json')
  writeFileSync(`${file}.tmp`, `${JSON.stringify(results, null, 2)}\n`)
  renameSync(`${file}.tmp`, file)
  // Keep the file as the repository's formatter (biome, run by `npm run lint`) wants it.
  try {
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'biome'), ['format', '--write', file], { stdio: 'ignore' })
  } catch {
    log('  (biome not available: results.json left unformatted)')
  }
  log(`\nwrote ${path.relative(process.cwd(), file)} in ${results.seconds} s`)
}

try {
  await main()
} finally {
  for (const server of running) await server.stop()
  if (postgres.admin) {
    for (const name of postgres.databases) {
      await dropDatabase(postgres.admin, name).catch((error) => log(`  ! could not drop ${name}: ${error.message}`))
    }
    await postgres.admin.end()
  }
  if (process.env.BENCH_KEEP === '1') log(`kept ${TMP}`)
  else rmSync(TMP, { recursive: true, force: true })
}
