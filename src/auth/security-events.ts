// The per-user security event log: who signed in to an account, from where, and
// what changed. The rules (src/auth/flows, the refresh and logout of
// plugins/auth.ts, src/admin) record each event here, once: a row in
// security_events (read back newest first by GET /users/me/security-events and
// `latchkey users show`) and one JSON log line with `event`, `userId`,
// `sessionId` and `ip` for the operator's log stack. Neither ever holds a
// token, a password or an email address. Failed logins for unknown emails have
// no account to attach to: they are counted in the metrics only.
//
// Each row carries its own end (`expires_at`, its time plus
// SECURITY_EVENT_RETENTION), so the session cleanup deletes old events by index
// without knowing the setting. The counters of plugins/metrics.ts are reached
// through `metrics`, no-ops when metrics are off.
import { randomUUID } from 'node:crypto'
import { type Kysely, sql, type Transaction } from 'kysely'
import type { Clock } from '../clock.js'
import { cursorScope, decodeCursor, type Page, type PageRequest, toPage } from '../data/cursor.js'
import type { Database, SecurityEventRow } from '../db/database.js'
import { toIso } from '../time.js'
import { deviceName } from './device-name.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database> | Transaction<Database>

/** Every event type; the names are stable (operators filter logs on them). */
export const SECURITY_EVENT_TYPES = [
  'signup',
  'login_succeeded',
  'login_failed',
  'login_throttled',
  'refresh_reuse_detected',
  'logout',
  'session_revoked',
  'password_changed',
  'password_reset',
  'email_changed',
  // Second factors, recorded by their flows once they exist.
  'totp_enabled',
  'totp_disabled',
  'recovery_code_used',
  'passkey_added',
  'passkey_removed',
  'account_disabled',
  'account_enabled',
  'account_deleted',
] as const

export type SecurityEventType = (typeof SECURITY_EVENT_TYPES)[number]

/** Where a request came from, as events record it. */
export interface EventClient {
  ip: string | null
  userAgent: string | null
}

export interface SecurityEventInput extends Partial<EventClient> {
  type: SecurityEventType
  userId: string
  /** The session the event is about (signed in, logged out, revoked, reused), if any. */
  sessionId?: string | null | undefined
}

/** The API shape (API.md section 7). */
export interface SecurityEvent {
  id: string
  type: string
  createdAt: string
  ip: string | null
  userAgent: string | null
  /** A short name of the device, from its user agent ("Chrome on Linux"). */
  device: string
  sessionId: string | null
}

export type LoginOutcome = 'ok' | 'wrong_password' | 'unknown_email' | 'throttled' | 'mfa' | 'disabled'
export type RefreshOutcome = 'rotated' | 'grace' | 'reused' | 'expired' | 'invalid' | 'disabled'
export type RevokeReason =
  | 'logout'
  | 'revoked'
  | 'password_changed'
  | 'refresh_reuse'
  | 'session_cap'
  | 'admin'
  | 'account_disabled'

/** What the rules count; plugins/metrics.ts turns it into Prometheus counters. */
export interface AuthMetrics {
  login(outcome: LoginOutcome): void
  refresh(outcome: RefreshOutcome): void
  sessionsRevoked(reason: RevokeReason, count: number): void
  securityEvent(type: SecurityEventType): void
}

export const NO_METRICS: AuthMetrics = {
  login() {},
  refresh() {},
  sessionsRevoked() {},
  securityEvent() {},
}

/** The one JSON line an event is logged as (pino adds level, time and msg). */
export interface SecurityEventLine {
  event: SecurityEventType
  userId: string
  sessionId: string | null
  ip: string | null
}

export interface SecurityEvents {
  /**
   * Writes the events with `db` (a transaction, when they belong to a change
   * made in one, so both happen or neither), then logs each as one line.
   */
  record(db: Db, ...events: SecurityEventInput[]): Promise<void>
  /**
   * Records the event unless the user has one of its type from the last
   * `withinMs`: for events an attacker can repeat at will (a throttled login),
   * so a flood leaves a row a minute, not a row a request.
   */
  recordUnlessRecent(db: Db, event: SecurityEventInput, withinMs: number): Promise<void>
  readonly metrics: AuthMetrics
}

export interface SecurityEventOptions {
  clock: Clock
  /** SECURITY_EVENT_RETENTION, in seconds. */
  retention: number
  /** Writes one log line per event. */
  log: (line: SecurityEventLine) => void
  metrics?: AuthMetrics | undefined
}

/** User agents are cut to this length, as sessions store them. */
const USER_AGENT_MAX = 512

export function createSecurityEvents(options: SecurityEventOptions): SecurityEvents {
  const metrics = options.metrics ?? NO_METRICS
  const events: SecurityEvents = {
    metrics,
    async recordUnlessRecent(db, event, withinMs) {
      // A range of the (user_id, created_at, id) index: the user's events of the last `withinMs`.
      const recent = await db
        .selectFrom('security_events')
        .select('id')
        .where('user_id', '=', event.userId)
        .where('created_at', '>', options.clock.now() - withinMs)
        .where('type', '=', event.type)
        .limit(1)
        .executeTakeFirst()
      if (!recent) await events.record(db, event)
    },
    async record(db, ...events) {
      if (events.length === 0) return
      const at = options.clock.now()
      const rows = events.map((event) => ({
        id: randomUUID(),
        user_id: event.userId,
        type: event.type,
        session_id: event.sessionId ?? null,
        ip: event.ip ?? null,
        user_agent: event.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
        created_at: at,
        expires_at: at + options.retention * 1000,
      }))
      await db.insertInto('security_events').values(rows).execute()
      for (const row of rows) {
        const type = row.type as SecurityEventType
        metrics.securityEvent(type)
        options.log({ event: type, userId: row.user_id, sessionId: row.session_id, ip: row.ip })
      }
    },
  }
  return events
}

/** The client of a request (Fastify's, or anything with an ip and headers). */
export function clientOf(request: { ip: string; headers: Record<string, string | string[] | undefined> }): EventClient {
  const userAgent = request.headers['user-agent']
  return { ip: request.ip, userAgent: typeof userAgent === 'string' ? userAgent.slice(0, USER_AGENT_MAX) : null }
}

export const toSecurityEvent = (row: SecurityEventRow): SecurityEvent => ({
  id: row.id,
  type: row.type,
  createdAt: toIso(row.created_at),
  ip: row.ip,
  userAgent: row.user_agent,
  device: deviceName(row.user_agent),
  sessionId: row.session_id,
})

/** One page of the user's events, newest first (src/data/cursor.ts: keyset, opaque cursor bound to the user). */
export async function pageSecurityEvents(
  db: Db,
  keys: Keys,
  userId: string,
  page: PageRequest,
): Promise<Page<SecurityEvent>> {
  const scope = cursorScope('security-events', userId)
  const after = page.cursor === undefined ? undefined : decodeCursor(keys, scope, page.cursor)
  if (!Number.isSafeInteger(page.limit) || page.limit < 1) throw new RangeError(`page limit ${page.limit}`)
  // As the data routes do (newestFirst): one more row than the page says whether
  // another follows; the LIMIT written into the SQL; a row-value range after the cursor.
  let query = securityEventsQuery(db, userId).limit(sql.lit(page.limit + 1))
  if (after) {
    query = query.where(sql<boolean>`(${sql.ref('created_at')}, ${sql.ref('id')}) < (${after.createdAt}, ${after.id})`)
  }
  return toPage(keys, scope, await query.execute(), page.limit, toSecurityEvent)
}

/** The user's events newest first, through the (user_id, created_at, id) index (exported for the query-plan test). */
export const securityEventsQuery = (db: Db, userId: string) =>
  db
    .selectFrom('security_events')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')

/** The user's latest `limit` events (for `latchkey users show`). */
export async function recentSecurityEvents(db: Db, userId: string, limit: number): Promise<SecurityEvent[]> {
  return (await securityEventsQuery(db, userId).limit(limit).execute()).map(toSecurityEvent)
}

/** Deletes every event of the user (the account is being deleted: its events hold IPs and user agents). */
export async function eraseSecurityEvents(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('security_events').where('user_id', '=', userId).execute()
}

/** One batch of events past their retention, through the expires_at index (for the session cleanup). */
export const expiredSecurityEventsQuery = (db: Db, at: number, batchSize: number) =>
  db.selectFrom('security_events').select('id').where('expires_at', '<=', at).limit(batchSize)
