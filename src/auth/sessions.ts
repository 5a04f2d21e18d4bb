// Sessions and refresh tokens. A session is one sign-in on one device; every
// token belongs to one. Refresh tokens are random 256-bit values stored only as
// keyed hashes. Each rotation marks the presented token used and issues its
// successor, an HMAC of the parent under a server key: re-deriving it lets a
// retry within the grace window receive the very same successor, while the
// database still holds no token in clear.
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database, SessionRow } from '../db/database.js'
import { prepareReadFirst } from '../db/prepared.js'
import { toIso } from '../time.js'
import { deleteExpiredChallenges } from './challenges.js'
import { deviceName } from './device-name.js'
import { expiredDeviceTokensQuery } from './device-tokens.js'
import type { Keys } from './keys.js'
import { expiredSecurityEventsQuery } from './security-events.js'
import type { UserRecord } from './users.js'

type Db = Kysely<Database>

export interface SessionPolicy {
  /** All in seconds. */
  refreshTokenTtl: number
  sessionMaxAge: number
  refreshReuseGrace: number
  /** Active sessions a user may have; a new sign-in beyond it ends the least recently used. */
  maxSessionsPerUser: number
}

export interface IssuedRefreshToken {
  token: string
  expiresAt: number
}

/** Refresh tokens are 43 base64url characters; anything else is not ours. */
const REFRESH_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/
/** How stale `last_used_at` may get before an authenticated request updates it. */
const LAST_USED_RESOLUTION_MS = 60_000

const hashToken = (keys: Keys, token: string) =>
  createHmac('sha256', keys.refreshTokenHash).update(token).digest('base64url')
const successorOf = (keys: Keys, token: string) =>
  createHmac('sha256', keys.refreshTokenSuccessor).update(token).digest('base64url')

/** How a session was started: what the user proved (API: the `signInMethod` of a session). */
export const SIGN_IN_METHODS = [
  'signup',
  'password',
  'password+totp',
  'password+recovery_code',
  'passkey',
  'link',
] as const
export type SignInMethod = (typeof SIGN_IN_METHODS)[number]

export async function createSession(
  db: Db,
  keys: Keys,
  policy: SessionPolicy,
  input: { userId: string; userAgent: string | null; ip: string | null; signInMethod: SignInMethod },
  at: number,
  /** More writes of the sign-in (its security event), in the same transaction. */
  alongside?: (trx: Transaction<Database>, session: SessionRow) => Promise<void>,
): Promise<{ session: SessionRow; refreshToken: IssuedRefreshToken; endedBeyondCap: number }> {
  const absoluteEnd = at + policy.sessionMaxAge * 1000
  const token = randomBytes(32).toString('base64url')
  const expiresAt = Math.min(at + policy.refreshTokenTtl * 1000, absoluteEnd)
  const session: SessionRow = {
    id: randomUUID(),
    user_id: input.userId,
    created_at: at,
    last_used_at: at,
    expires_at: expiresAt,
    absolute_expires_at: absoluteEnd,
    revoked_at: null,
    user_agent: input.userAgent,
    ip: input.ip,
    sign_in_method: input.signInMethod,
  }
  const endedBeyondCap = await db.transaction().execute(async (trx) => {
    await trx.insertInto('sessions').values(session).execute()
    await trx
      .insertInto('refresh_tokens')
      .values({
        token_hash: hashToken(keys, token),
        session_id: session.id,
        created_at: at,
        expires_at: expiresAt,
        used_at: null,
      })
      .execute()
    const ended = await endSessionsBeyondCap(trx, input.userId, policy.maxSessionsPerUser, at)
    await alongside?.(trx, session)
    return ended
  })
  return { session, refreshToken: { token, expiresAt }, endedBeyondCap }
}

/**
 * Revokes the user's least recently used active sessions beyond `max` (the
 * newest sign-in counts as used now); returns how many.
 */
async function endSessionsBeyondCap(db: Db, userId: string, max: number, at: number): Promise<number> {
  const active = await db
    .selectFrom('sessions')
    .select('id')
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', at)
    .orderBy('last_used_at', 'desc')
    .orderBy('created_at', 'desc')
    .execute()
  const beyond = active.slice(max).map((row) => row.id)
  if (beyond.length === 0) return 0
  await db.updateTable('sessions').set({ revoked_at: at }).where('id', 'in', beyond).execute()
  return beyond.length
}

export type RotationResult =
  /** `grace`: a retry within the grace window, answered with the successor already issued. */
  | { ok: true; session: SessionRow; refreshToken: IssuedRefreshToken; grace: boolean }
  | { ok: false; reason: 'invalid' | 'expired' }
  /** The session was revoked now; `session` names it (for the security event). */
  | { ok: false; reason: 'reused'; session: SessionRow }
  /** The account is disabled (`latchkey users disable`). */
  | { ok: false; reason: 'disabled' }

/**
 * Rotates a refresh token, in one transaction that locks the token's row and
 * its session's (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transaction holds
 * the one write lock), so concurrent refreshes of one token, on any instance,
 * run one after the other: the first rotates, the others (within the grace
 * window) receive the same successor, re-derived, and no second chain is made.
 */
export async function rotateRefreshToken(
  db: Db,
  keys: Keys,
  policy: SessionPolicy,
  token: string,
  at: number,
): Promise<RotationResult> {
  if (!REFRESH_TOKEN_PATTERN.test(token)) return { ok: false, reason: 'invalid' }
  const presentedHash = hashToken(keys, token)
  return db.transaction().execute(async (trx): Promise<RotationResult> => {
    const row = await trx
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .selectAll('sessions')
      .select([
        'refresh_tokens.expires_at as token_expires_at',
        'refresh_tokens.used_at as token_used_at',
        'users.disabled_at as user_disabled_at',
      ])
      .where('refresh_tokens.token_hash', '=', presentedHash)
      .forUpdate()
      .executeTakeFirst()
    if (!row) return { ok: false, reason: 'invalid' }
    // Before the revocation check: disabling the account revoked its sessions.
    if (row.user_disabled_at !== null) return { ok: false, reason: 'disabled' }
    if (row.revoked_at !== null) return { ok: false, reason: 'invalid' }
    const { token_expires_at: tokenExpiresAt, token_used_at: tokenUsedAt, user_disabled_at: _, ...session } = row
    if (tokenExpiresAt <= at || session.absolute_expires_at <= at) return { ok: false, reason: 'expired' }

    const successor = successorOf(keys, token)
    if (tokenUsedAt !== null) {
      if (at - tokenUsedAt > policy.refreshReuseGrace * 1000) {
        // A rotated token came back after the grace window: it was stolen, or
        // the client is broken. Either way the session can no longer be trusted.
        await trx.updateTable('sessions').set({ revoked_at: at }).where('id', '=', session.id).execute()
        return { ok: false, reason: 'reused', session: { ...session, revoked_at: at } }
      }
      const issued = await trx
        .selectFrom('refresh_tokens')
        .select('expires_at')
        .where('token_hash', '=', hashToken(keys, successor))
        .executeTakeFirst()
      if (!issued) return { ok: false, reason: 'invalid' }
      return { ok: true, session, refreshToken: { token: successor, expiresAt: issued.expires_at }, grace: true }
    }

    const expiresAt = Math.min(at + policy.refreshTokenTtl * 1000, session.absolute_expires_at)
    await trx.updateTable('refresh_tokens').set({ used_at: at }).where('token_hash', '=', presentedHash).execute()
    await trx
      .insertInto('refresh_tokens')
      .values({
        token_hash: hashToken(keys, successor),
        session_id: session.id,
        created_at: at,
        expires_at: expiresAt,
        used_at: null,
      })
      .execute()
    await trx
      .updateTable('sessions')
      .set({ expires_at: expiresAt, last_used_at: at })
      .where('id', '=', session.id)
      .execute()
    return {
      ok: true,
      session: { ...session, expires_at: expiresAt, last_used_at: at },
      refreshToken: { token: successor, expiresAt },
      grace: false,
    }
  })
}

/**
 * The session a refresh token belongs to, if the token is current (unused, or
 * used within the grace window) and its session active. Used by logout.
 */
export async function findSessionByRefreshToken(
  db: Db,
  keys: Keys,
  policy: SessionPolicy,
  token: string,
  at: number,
  options: { allowUsed: boolean },
): Promise<SessionRow | undefined> {
  if (!REFRESH_TOKEN_PATTERN.test(token)) return undefined
  const row = await db
    .selectFrom('refresh_tokens')
    .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
    .selectAll('sessions')
    .select(['refresh_tokens.expires_at as token_expires_at', 'refresh_tokens.used_at as token_used_at'])
    .where('refresh_tokens.token_hash', '=', hashToken(keys, token))
    .executeTakeFirst()
  if (!row || row.revoked_at !== null || row.expires_at <= at || row.token_expires_at <= at) return undefined
  const { token_expires_at: _, token_used_at: usedAt, ...session } = row
  if (usedAt !== null && !options.allowUsed && at - usedAt > policy.refreshReuseGrace * 1000) return undefined
  return session
}

export interface AuthenticatedSession {
  sessionId: string
  lastUsedAt: number
  user: UserRecord
}

/**
 * The per-request check: the session of an access token, with its user, if the
 * session is still active and the account not disabled. One primary-key lookup
 * (the user joined by its primary key), compiled once and run with the session
 * id as its only parameter.
 */
export function createSessionLookup(
  db: Db,
): (sessionId: string, at: number) => Promise<AuthenticatedSession | undefined> {
  const query = db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    // The address is verified while the recorded one is still the user's: read
    // here, so /users/me needs no second round trip.
    .leftJoin('email_verifications', (join) =>
      join.onRef('email_verifications.user_id', '=', 'users.id').onRef('email_verifications.email', '=', 'users.email'),
    )
    .select([
      'sessions.id as session_id',
      'sessions.last_used_at',
      'sessions.expires_at',
      'sessions.revoked_at',
      'users.id',
      'users.email',
      'users.display_name',
      'users.created_at',
      'users.updated_at',
      'users.disabled_at',
      'email_verifications.verified_at',
    ])
    .where('sessions.id', '=', '')
  type Row = NonNullable<Awaited<ReturnType<typeof query.executeTakeFirst>>>
  const read = prepareReadFirst<Row>(db, query)
  return async (sessionId, at) => {
    const row = await read([sessionId])
    if (!row || row.revoked_at !== null || row.expires_at <= at || row.disabled_at !== null) return undefined
    return {
      sessionId: row.session_id,
      lastUsedAt: row.last_used_at,
      user: {
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        created_at: row.created_at,
        updated_at: row.updated_at,
        disabled_at: row.disabled_at,
        email_verified: row.verified_at !== null,
      },
    }
  }
}

/** Records activity, at most once a minute per session so reads stay reads. */
export async function touchSession(db: Db, session: AuthenticatedSession, at: number): Promise<void> {
  if (at - session.lastUsedAt < LAST_USED_RESOLUTION_MS) return
  await db.updateTable('sessions').set({ last_used_at: at }).where('id', '=', session.sessionId).execute()
}

export interface SessionView {
  id: string
  createdAt: string
  lastUsedAt: string
  expiresAt: string
  userAgent: string | null
  /** A short name of the device, from its user agent ("Chrome on Linux"). */
  device: string
  ip: string | null
  signInMethod: string | null
  current: boolean
}

export async function listActiveSessions(
  db: Db,
  userId: string,
  currentSessionId: string,
  at: number,
): Promise<SessionView[]> {
  const rows = await db
    .selectFrom('sessions')
    .selectAll()
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', at)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute()
  return rows.map((row) => ({
    id: row.id,
    createdAt: toIso(row.created_at),
    lastUsedAt: toIso(row.last_used_at),
    expiresAt: toIso(row.expires_at),
    userAgent: row.user_agent,
    device: deviceName(row.user_agent),
    ip: row.ip,
    signInMethod: row.sign_in_method,
    current: row.id === currentSessionId,
  }))
}

/** Revokes one active session of the user; false if there is none with that id. */
export async function revokeSession(db: Db, userId: string, sessionId: string, at: number): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ revoked_at: at })
    .where('id', '=', sessionId)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', at)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Revokes every active session of the user except `keepSessionId` (all of them if null). */
export async function revokeUserSessions(
  db: Db,
  userId: string,
  keepSessionId: string | null,
  at: number,
): Promise<number> {
  let query = db
    .updateTable('sessions')
    .set({ revoked_at: at })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
  if (keepSessionId !== null) query = query.where('id', '!=', keepSessionId)
  const result = await query.executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** Revokes every active session of the user except `keepSessionId` (all of them if null); returns their ids. */
export async function revokeActiveSessions(
  db: Db,
  userId: string,
  keepSessionId: string | null,
  at: number,
): Promise<string[]> {
  let query = db
    .updateTable('sessions')
    .set({ revoked_at: at })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', at)
  if (keepSessionId !== null) query = query.where('id', '!=', keepSessionId)
  return (await query.returning('id').execute()).map((row) => row.id)
}

/**
 * Logout: ends the caller's session (`current`), the user's other sessions, or
 * all of them. Returns the ids of the sessions it ended.
 */
export async function endSessions(
  db: Db,
  caller: { userId: string; sessionId: string },
  scope: 'current' | 'others' | 'all',
  at: number,
): Promise<string[]> {
  if (scope === 'current') {
    return (await revokeSession(db, caller.userId, caller.sessionId, at)) ? [caller.sessionId] : []
  }
  return revokeActiveSessions(db, caller.userId, scope === 'others' ? caller.sessionId : null, at)
}

/**
 * The queries that pick one batch of ended rows. Each is a range scan on its own
 * index (an `OR`, or `IS NOT NULL`, would scan the whole table on every batch);
 * exported for the query-plan test.
 */
export function endedRowQueries(db: Db, at: number, batchSize: number) {
  return {
    expiredSessions: db.selectFrom('sessions').select('id').where('expires_at', '<=', at).limit(batchSize),
    revokedSessions: db.selectFrom('sessions').select('id').where('revoked_at', '<=', at).limit(batchSize),
    expiredTokens: db.selectFrom('refresh_tokens').select('token_hash').where('expires_at', '<=', at).limit(batchSize),
  }
}

/**
 * Deletes one batch of ended sessions (expired, then revoked; their refresh
 * tokens go with them), then of expired refresh tokens of live sessions, then of
 * expired device tokens, then of security events past their retention, in one
 * short transaction. Returns the rows deleted; call again until it returns 0.
 */
export async function deleteEndedSessionsBatch(db: Db, at: number, batchSize: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const { expiredSessions, revokedSessions, expiredTokens } = endedRowQueries(trx, at, batchSize)
    const deleted = async (query: { executeTakeFirst(): Promise<{ numDeletedRows: bigint }> }) =>
      Number((await query.executeTakeFirst()).numDeletedRows)
    return (
      (await deleted(trx.deleteFrom('sessions').where('id', 'in', expiredSessions))) ||
      (await deleted(trx.deleteFrom('sessions').where('id', 'in', revokedSessions))) ||
      (await deleted(trx.deleteFrom('refresh_tokens').where('token_hash', 'in', expiredTokens))) ||
      (await deleted(
        trx.deleteFrom('device_tokens').where('token_hash', 'in', expiredDeviceTokensQuery(trx, at, batchSize)),
      )) ||
      (await deleted(
        trx.deleteFrom('security_events').where('id', 'in', expiredSecurityEventsQuery(trx, at, batchSize)),
      )) ||
      (await deleteExpiredChallenges(trx, at, batchSize))
    )
  })
}
