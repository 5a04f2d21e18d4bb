// The rules of `latchkey users ...`: plain functions over Kysely, the same on
// SQLite and PostgreSQL, run by the CLI beside (or without) a running server.
// A running server sees their effect on its next request: every request reads
// its session and account (src/auth/sessions.ts createSessionLookup), so a
// revoked session or a disabled account is refused at once, on every instance.
// Each change is a security event of the account, made by the operator: no IP,
// the user agent says `latchkey CLI`.
import { type Kysely, sql } from 'kysely'
import { deleteAccount } from '../auth/flows/delete-account.js'
import { listPasskeys } from '../auth/passkeys.js'
import { deleteRecoveryCodes } from '../auth/recovery-codes.js'
import { recentSecurityEvents, type SecurityEvent, type SecurityEvents } from '../auth/security-events.js'
import { listActiveSessions, revokeActiveSessions, type SessionView } from '../auth/sessions.js'
import { deleteTotp, hasTotp } from '../auth/totp.js'
import { findUserByEmail, normalizeEmail } from '../auth/users.js'
import type { Database } from '../db/database.js'
import { toIso } from '../time.js'

type Db = Kysely<Database>

/** What the CLI records as the "client" of an operator's change. */
export const OPERATOR = { ip: null, userAgent: 'latchkey CLI' } as const

export interface UserSummary {
  id: string
  email: string
  displayName: string | null
  createdAt: string
  disabledAt: string | null
  activeSessions: number
}

export interface UserDetails extends UserSummary {
  emailVerified: boolean
  updatedAt: string
  /** How the account signs in: `password` always, `totp` when it is on, and each passkey by name. */
  factors: string[]
  sessions: Omit<SessionView, 'current'>[]
  recentEvents: SecurityEvent[]
}

/** Events `users show` lists. */
export const RECENT_EVENTS = 20
/** Users `users list` shows at most. */
export const LIST_LIMIT = 1000

/**
 * A LIKE pattern from the CLI's: `*` is any run of characters and `?` one; a
 * pattern without either matches anywhere in the address. Emails are stored
 * lower-cased, so the pattern is too.
 */
export function likePattern(pattern: string): string {
  const escaped = normalizeEmail(pattern).replace(/[\\%_]/g, (character) => `\\${character}`)
  const wild = escaped.replace(/\*/g, '%').replace(/\?/g, '_')
  return /[*?]/.test(pattern) ? wild : `%${wild}%`
}

export async function listUsers(db: Db, at: number, emailPattern?: string): Promise<UserSummary[]> {
  let query = db
    .selectFrom('users')
    .leftJoin('sessions', (join) =>
      join
        .onRef('sessions.user_id', '=', 'users.id')
        .on('sessions.revoked_at', 'is', null)
        .on('sessions.expires_at', '>', at),
    )
    .select((eb) => [
      'users.id',
      'users.email',
      'users.display_name',
      'users.created_at',
      'users.disabled_at',
      eb.fn.count<number | string>('sessions.id').as('active_sessions'),
    ])
    .groupBy(['users.id', 'users.email', 'users.display_name', 'users.created_at', 'users.disabled_at'])
    .orderBy('users.email')
    .limit(LIST_LIMIT)
  if (emailPattern !== undefined) {
    // ESCAPE spelled out: SQLite's LIKE has no escape character by default.
    query = query.where(sql<boolean>`${sql.ref('users.email')} like ${likePattern(emailPattern)} escape '\\'`)
  }
  const rows = await query.execute()
  return rows.map((row) => ({
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    createdAt: toIso(row.created_at),
    disabledAt: row.disabled_at === null ? null : toIso(row.disabled_at),
    activeSessions: Number(row.active_sessions),
  }))
}

export async function showUser(db: Db, email: string, at: number): Promise<UserDetails | undefined> {
  const user = await findUserByEmail(db, normalizeEmail(email))
  if (!user) return undefined
  const sessions = (await listActiveSessions(db, user.id, '', at)).map(({ current: _, ...session }) => session)
  const passkeys = await listPasskeys(db, user.id)
  const factors = ['password']
  if (await hasTotp(db, user.id)) factors.push('totp')
  for (const passkey of passkeys) factors.push(`passkey "${passkey.name}"`)
  return {
    id: user.id,
    email: user.email,
    displayName: user.display_name,
    createdAt: toIso(user.created_at),
    updatedAt: toIso(user.updated_at),
    disabledAt: user.disabled_at === null ? null : toIso(user.disabled_at),
    emailVerified: user.email_verified,
    activeSessions: sessions.length,
    factors,
    sessions,
    recentEvents: await recentSecurityEvents(db, user.id, RECENT_EVENTS),
  }
}

export type AdminResult<T> = { found: false } | ({ found: true; userId: string } & T)

/**
 * Turns the account's TOTP factor off and ends its recovery codes (a user who
 * lost both the app and the codes): the password alone signs in again, and
 * the user can set up a new app. A `totp_disabled` event when there was one.
 */
export async function resetTotp(
  db: Db,
  events: SecurityEvents,
  email: string,
): Promise<AdminResult<{ changed: boolean }>> {
  const user = await findUserByEmail(db, normalizeEmail(email))
  if (!user) return { found: false }
  const changed = await db.transaction().execute(async (trx) => {
    const removed = await deleteTotp(trx, user.id)
    await deleteRecoveryCodes(trx, user.id)
    if (removed) await events.record(trx, { type: 'totp_disabled', userId: user.id, ...OPERATOR })
    return removed
  })
  return { found: true, userId: user.id, changed }
}

/** Ends every active session of the account; one `session_revoked` event each. */
export async function revokeAllSessions(
  db: Db,
  events: SecurityEvents,
  email: string,
  at: number,
): Promise<AdminResult<{ revoked: number }>> {
  const user = await findUserByEmail(db, normalizeEmail(email))
  if (!user) return { found: false }
  const revoked = await db.transaction().execute(async (trx) => {
    const ids = await revokeActiveSessions(trx, user.id, null, at)
    await events.record(
      trx,
      ...ids.map((sessionId) => ({ type: 'session_revoked' as const, userId: user.id, sessionId, ...OPERATOR })),
    )
    return ids.length
  })
  events.metrics.sessionsRevoked('admin', revoked)
  return { found: true, userId: user.id, revoked }
}

/**
 * Disables the account: it can no longer sign in or refresh (403
 * ACCOUNT_DISABLED), and its sessions end now, access tokens included.
 * `changed` is false when it was disabled already (its sessions are ended again).
 */
export async function disableUser(
  db: Db,
  events: SecurityEvents,
  email: string,
  at: number,
): Promise<AdminResult<{ changed: boolean; revoked: number }>> {
  const user = await findUserByEmail(db, normalizeEmail(email))
  if (!user) return { found: false }
  const result = await db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('users')
      .set({ disabled_at: at })
      .where('id', '=', user.id)
      .where('disabled_at', 'is', null)
      .executeTakeFirst()
    const changed = updated.numUpdatedRows > 0n
    const revoked = (await revokeActiveSessions(trx, user.id, null, at)).length
    if (changed) await events.record(trx, { type: 'account_disabled', userId: user.id, ...OPERATOR })
    return { changed, revoked }
  })
  events.metrics.sessionsRevoked('account_disabled', result.revoked)
  return { found: true, userId: user.id, ...result }
}

/** Lets a disabled account sign in again (its ended sessions stay ended). */
export async function enableUser(
  db: Db,
  events: SecurityEvents,
  email: string,
): Promise<AdminResult<{ changed: boolean }>> {
  const user = await findUserByEmail(db, normalizeEmail(email))
  if (!user) return { found: false }
  const changed = await db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('users')
      .set({ disabled_at: null })
      .where('id', '=', user.id)
      .where('disabled_at', 'is not', null)
      .executeTakeFirst()
    if (updated.numUpdatedRows === 0n) return false
    await events.record(trx, { type: 'account_enabled', userId: user.id, ...OPERATOR })
    return true
  })
  return { found: true, userId: user.id, changed }
}

/** Deletes the account and all its data, as DELETE /users/me does (src/auth/flows/delete-account.ts). */
export async function deleteUserByEmail(
  db: Db,
  events: SecurityEvents,
  email: string,
): Promise<AdminResult<Record<never, never>>> {
  const user = await findUserByEmail(db, normalizeEmail(email))
  if (!user) return { found: false }
  if (!(await deleteAccount({ db, events }, user.id))) return { found: false }
  return { found: true, userId: user.id }
}
