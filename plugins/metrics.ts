// Prometheus metrics (prom-client, used directly: one hook and counters we
// choose, with the route pattern as a label, rather than a plugin's own routes
// and hooks; see README "Operating latchkey"). Off unless METRICS_TOKEN is set:
// then no hook is added and every counter is a no-op, so a deployment without
// metrics pays nothing. On, it records:
// - each request's count and latency by method, route pattern (never the raw
//   URL: ids and query strings would make a series per request) and status, in
//   an onResponse hook of each route;
// - the auth counters the rules report (src/auth/security-events.ts AuthMetrics);
// - the argon2 queue (waiting, active, wait time), Node's default metrics
//   (event-loop delay, heap, GC, CPU), the PostgreSQL pool and the mail queue,
//   read when scraped.
// GET /metrics itself lives in routes/metrics.ts.
import type { FastifyInstance, onResponseHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { Metric } from 'prom-client'
import {
  type AuthMetrics,
  type LoginOutcome,
  NO_METRICS,
  type RefreshOutcome,
  type RevokeReason,
  SECURITY_EVENT_TYPES,
} from '../src/auth/security-events.js'
import { postgresPools } from '../src/db/dialect.js'

export interface Metrics {
  readonly enabled: boolean
  readonly auth: AuthMetrics
  /** For the password hasher: seconds a hash waited for a slot. */
  readonly passwordWait: ((seconds: number) => void) | undefined
  /** The text format of every metric, after reading the gauges that are read when scraped. */
  scrape(): Promise<{ contentType: string; body: string }>
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

const LOGIN_OUTCOMES: LoginOutcome[] = ['ok', 'wrong_password', 'unknown_email', 'throttled', 'mfa', 'disabled']
const REFRESH_OUTCOMES: RefreshOutcome[] = ['rotated', 'grace', 'reused', 'expired', 'invalid', 'disabled']
/** The server's reasons (`admin` and `account_disabled` are the `users` commands', in their own process). */
const REVOKE_REASONS: RevokeReason[] = ['logout', 'revoked', 'password_changed', 'refresh_reuse', 'session_cap']
/** Requests are mostly a few ms; logins take argon2's 50-500 ms. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** The route label of a request that matched no route (a 404): one series, whatever the URL. */
const UNMATCHED = '(unmatched)'

interface RequestSeries {
  labels: { method: string; route: string; status: string }
  count: number
  sum: number
  /** Observations per bucket of LATENCY_BUCKETS (not cumulative); above the last: count minus their sum. */
  buckets: number[]
}

const newSeries = (labels: RequestSeries['labels']): RequestSeries => ({
  labels,
  count: 0,
  sum: 0,
  buckets: LATENCY_BUCKETS.map(() => 0),
})

function observe(series: RequestSeries, seconds: number): void {
  series.count++
  series.sum += seconds
  let bucket = 0
  while (bucket < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[bucket] as number)) bucket++
  if (bucket < LATENCY_BUCKETS.length) series.buckets[bucket] = (series.buckets[bucket] as number) + 1
}

const REQUESTS_TOTAL = 'latchkey_http_requests_total'
const REQUEST_DURATION = 'latchkey_http_request_duration_seconds'

/** The request counts as prom-client's registry reads a metric (`get()`), from the series. */
const requestCounter = (all: RequestSeries[]) => ({
  name: REQUESTS_TOTAL,
  help: 'Requests by method, route pattern and status',
  type: 'counter',
  aggregator: 'sum',
  get: async () => ({
    name: REQUESTS_TOTAL,
    help: 'Requests by method, route pattern and status',
    type: 'counter',
    aggregator: 'sum',
    values: all.map((series) => ({ labels: series.labels, value: series.count })),
  }),
})

/** The latency histogram in prom-client's shape: cumulative `_bucket`s with `le`, `_sum`, `_count`. */
const requestHistogram = (all: RequestSeries[]) => {
  const help = 'Request latency by method, route pattern and status, in seconds'
  return {
    name: REQUEST_DURATION,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({
      name: REQUEST_DURATION,
      help,
      type: 'histogram',
      aggregator: 'sum',
      values: all.flatMap((series) => {
        let cumulative = 0
        return [
          ...LATENCY_BUCKETS.map((bound, index) => {
            cumulative += series.buckets[index] as number
            return {
              metricName: `${REQUEST_DURATION}_bucket`,
              labels: { ...series.labels, le: bound },
              value: cumulative,
            }
          }),
          { metricName: `${REQUEST_DURATION}_bucket`, labels: { ...series.labels, le: '+Inf' }, value: series.count },
          { metricName: `${REQUEST_DURATION}_sum`, labels: series.labels, value: series.sum },
          { metricName: `${REQUEST_DURATION}_count`, labels: series.labels, value: series.count },
        ]
      }),
    }),
  }
}

const off: Metrics = {
  enabled: false,
  auth: NO_METRICS,
  passwordWait: undefined,
  async scrape() {
    throw new Error('metrics are off (METRICS_TOKEN is not set)')
  },
}

async function metrics(fastify: FastifyInstance): Promise<void> {
  if (fastify.config.metricsToken === undefined) {
    fastify.decorate('metrics', off)
    return
  }
  // Loaded only when on: a start without metrics does not evaluate it.
  const { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } = await import('prom-client')
  // A registry of this app's own: tests build many apps in one process.
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]

  // Requests: counted in accumulators of our own, one per route, method and
  // status, found through two map lookups from a hook made per route (which
  // knows its pattern), and read into the text format only when scraped. (prom-client's
  // label children hash and validate their labels on every call: that, and
  // reading the route's pattern per request, was most of the cost.)
  const requestSeries: RequestSeries[] = []
  const seriesFinder = (route: string) => {
    const byMethod = new Map<string, Map<number, RequestSeries>>()
    return (method: string, status: number): RequestSeries => {
      let byStatus = byMethod.get(method)
      if (!byStatus) {
        byStatus = new Map()
        byMethod.set(method, byStatus)
      }
      let series = byStatus.get(status)
      if (!series) {
        series = newSeries({ method, route, status: String(status) })
        byStatus.set(status, series)
        requestSeries.push(series)
      }
      return series
    }
  }
  fastify.addHook('onRoute', (route) => {
    const find = seriesFinder(route.url)
    const record: onResponseHookHandler = (request, reply, done) => {
      observe(find(request.method, reply.statusCode), reply.elapsedTime / 1000)
      done()
    }
    const existing = route.onResponse ?? []
    route.onResponse = [...(Array.isArray(existing) ? existing : [existing]), record]
  })
  // Requests that matched no route (the 404 handler): one series, whatever the URL.
  const unmatched = seriesFinder(UNMATCHED)
  fastify.addHook('onResponse', (request, reply, done) => {
    if (request.is404) observe(unmatched(request.method, reply.statusCode), reply.elapsedTime / 1000)
    done()
  })
  registry.registerMetric(requestCounter(requestSeries) as unknown as Metric)
  registry.registerMetric(requestHistogram(requestSeries) as unknown as Metric)

  const logins = new Counter({
    name: 'latchkey_logins_total',
    help: 'POST /auth/login attempts by outcome (unknown_email: failed for an email without an account)',
    labelNames: ['outcome'] as const,
    registers,
  })
  const refreshes = new Counter({
    name: 'latchkey_refreshes_total',
    help: 'Refresh-token presentations by outcome',
    labelNames: ['outcome'] as const,
    registers,
  })
  const revoked = new Counter({
    name: 'latchkey_sessions_revoked_total',
    help: 'Sessions revoked by this instance, by reason',
    labelNames: ['reason'] as const,
    registers,
  })
  const events = new Counter({
    name: 'latchkey_security_events_total',
    help: 'Security events recorded by this instance, by type',
    labelNames: ['type'] as const,
    registers,
  })
  // Every series exists from the start at 0, so rate() and alerts see the first event.
  for (const outcome of LOGIN_OUTCOMES) logins.labels(outcome).inc(0)
  for (const outcome of REFRESH_OUTCOMES) refreshes.labels(outcome).inc(0)
  for (const reason of REVOKE_REASONS) revoked.labels(reason).inc(0)
  for (const type of SECURITY_EVENT_TYPES) events.labels(type).inc(0)
  const auth: AuthMetrics = {
    login: (outcome) => logins.labels(outcome).inc(),
    refresh: (outcome) => refreshes.labels(outcome).inc(),
    sessionsRevoked: (reason, count) => {
      if (count > 0) revoked.labels(reason).inc(count)
    },
    securityEvent: (type) => events.labels(type).inc(),
  }

  const hashWait = new Histogram({
    name: 'latchkey_password_hash_wait_seconds',
    help: 'Time an argon2 hash or verification waited for a slot (HASH_CONCURRENCY)',
    buckets: WAIT_BUCKETS,
    registers,
  })
  const hashQueue = new Gauge({
    name: 'latchkey_password_hash_queue_length',
    help: 'argon2 hashes waiting for a slot now (beyond HASH_QUEUE_MAX: 503 SERVER_BUSY)',
    registers,
  })
  const hashActive = new Gauge({
    name: 'latchkey_password_hash_active',
    help: 'argon2 hashes being computed now',
    registers,
  })

  const pool = postgresPools.get(fastify.database)
  const poolGauges = pool && {
    total: new Gauge({
      name: 'latchkey_db_pool_connections',
      help: 'PostgreSQL pool connections open (DATABASE_POOL_MAX at most)',
      registers,
    }),
    idle: new Gauge({ name: 'latchkey_db_pool_idle_connections', help: 'PostgreSQL pool connections idle', registers }),
    waiting: new Gauge({
      name: 'latchkey_db_pool_waiting_queries',
      help: 'Queries waiting for a PostgreSQL pool connection',
      registers,
    }),
  }

  // The mail queue is read from its table (one COUNT per scrape, not per request).
  const mailGauges = {
    queued: new Gauge({
      name: 'latchkey_mail_queue_length',
      help: 'Mails waiting to be sent, or being sent (all instances)',
      registers,
    }),
    failed: new Gauge({
      name: 'latchkey_mail_failed_jobs',
      help: 'Mails given up and kept for the operator (all instances, 7 days)',
      registers,
    }),
    sent: new Gauge({ name: 'latchkey_mail_sent', help: 'Mails sent by this instance since it started', registers }),
    failedAttempts: new Gauge({
      name: 'latchkey_mail_failed_attempts',
      help: 'Failed send attempts of this instance since it started (each retried or given up)',
      registers,
    }),
  }

  async function readGauges(): Promise<void> {
    const { waiting, active } = fastify.passwords.queue()
    hashQueue.set(waiting)
    hashActive.set(active)
    if (pool && poolGauges) {
      poolGauges.total.set(pool.totalCount)
      poolGauges.idle.set(pool.idleCount)
      poolGauges.waiting.set(pool.waitingCount)
    }
    if (fastify.hasDecorator('mail')) {
      try {
        const stats = await fastify.mail.stats()
        mailGauges.queued.set(stats.queued)
        mailGauges.failed.set(stats.failed)
        mailGauges.sent.set(stats.sent)
        mailGauges.failedAttempts.set(stats.failedAttempts)
      } catch (error) {
        // The database does not answer: the other metrics still go out.
        fastify.log.warn({ err: error }, 'metrics: the mail queue could not be read')
      }
    }
  }

  fastify.decorate('metrics', {
    enabled: true,
    auth,
    passwordWait: (seconds: number) => hashWait.observe(seconds),
    async scrape() {
      await readGauges()
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
  } satisfies Metrics)
}

export default fp(metrics, { name: 'metrics', dependencies: ['db'] })
