// Shared counters for limits (rate-limiter-flexible), on the best store the
// deployment has: Redis when REDIS_URL is set (every instance counts together),
// else PostgreSQL's `rate_limits` table on PostgreSQL (still shared), else
// process memory (one SQLite server is one process). A store outage never turns
// a limit off: the counters fall back to memory (per instance), with a warning.
import type { Redis } from 'ioredis'
import type pg from 'pg'
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRedis,
  type RateLimiterRes,
} from 'rate-limiter-flexible'

export interface CounterOptions {
  /** Names the counter; keys of different counters never collide. */
  name: string
  points: number
  durationSeconds: number
}

export type CounterFactory = (options: CounterOptions) => RateLimiterAbstract

export type CounterStore = { kind: 'memory' } | { kind: 'redis'; client: Redis } | { kind: 'postgres'; pool: pg.Pool }

/** How often a fallback is logged at most. */
const WARN_INTERVAL_MS = 60_000

/** The per-instance stand-in used while the shared store fails; says so in the log, once a minute. */
class FallbackLimiter extends RateLimiterMemory {
  #lastWarning = 0
  constructor(
    options: ConstructorParameters<typeof RateLimiterMemory>[0],
    private readonly warn: (message: string) => void,
  ) {
    super(options)
  }
  #noteFallback(): void {
    const now = Date.now()
    if (now - this.#lastWarning < WARN_INTERVAL_MS) return
    this.#lastWarning = now
    this.warn('the shared limit store failed; counting in this instance only until it answers again')
  }
  override consume(key: string | number, points?: number, options?: object): Promise<RateLimiterRes> {
    this.#noteFallback()
    return super.consume(key, points, options)
  }
  override delete(key: string | number, options?: object): Promise<boolean> {
    this.#noteFallback()
    return super.delete(key, options)
  }
  override reward(key: string | number, points?: number, options?: object): Promise<RateLimiterRes> {
    this.#noteFallback()
    return super.reward(key, points, options)
  }
}

/** The table the PostgreSQL counters use (created by a migration). */
export const RATE_LIMITS_TABLE = 'rate_limits'

export function createCounterFactory(store: CounterStore, warn: (message: string) => void): CounterFactory {
  return ({ name, points, durationSeconds }) => {
    const common = { keyPrefix: `latchkey:${name}`, points, duration: durationSeconds }
    if (store.kind === 'memory') return new RateLimiterMemory(common)
    const insuranceLimiter = new FallbackLimiter(common, warn)
    if (store.kind === 'redis') {
      // Not ready (down, reconnecting): count in memory at once rather than queue the command.
      return new RateLimiterRedis({
        ...common,
        storeClient: store.client,
        insuranceLimiter,
        rejectIfRedisNotReady: true,
      })
    }
    return new RateLimiterPostgres({
      ...common,
      storeClient: store.pool,
      storeType: 'pool',
      tableName: RATE_LIMITS_TABLE,
      tableCreated: true,
      insuranceLimiter,
    })
  }
}
