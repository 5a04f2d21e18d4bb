// Sessions and refresh tokens. A session is one sign-in on one device; every
// token belongs to one. Refresh tokens are random 256-bit values stored only as
// keyed hashes. Each rotation marks the presented token used and issues its
// successor, an HMAC of the parent under a server key: re-deriving it lets a
// retry within the grace window receive the very same successor, while the
// database still holds no token in clear.
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import type { Store } from '../db/connection.js'
import type { SessionRow } from '../db/schema.js'
import { toIso } from '../time.js'
import type { Keys } from './keys.js'
import type { UserRecord } from './users.js'

export interface SessionPolicy {
  /** All in seconds. */
  refreshTokenTtl: number
  sessionMaxAge: number
  refreshReuseGrace: number
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

export function createSession(
  store: Store,
  keys: Keys,
  policy: SessionPolicy,
  input: { userId: string; userAgent: string | null; ip: string | null },
  at: number,
): { session: SessionRow; refreshToken: IssuedRefreshToken } {
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
  }
  store.transaction(() => {
    store.run(store.db.insertInto('sessions').values(session))
    store.run(
      store.db.insertInto('refresh_tokens').values({
        token_hash: hashToken(keys, token),
        session_id: session.id,
        created_at: at,
        expires_at: expiresAt,
        used_at: null,
      }),
    )
  })
  return { session, refreshToken: { token, expiresAt } }
}

export type RotationResult =
  | { ok: true; session: SessionRow; refreshToken: IssuedRefreshToken }
  | { ok: false; reason: 'invalid' | 'expired' | 'reused' }

/**
 * Rotates a refresh token. One synchronous transaction, so concurrent refreshes
 * with one token see each other's writes: the first rotates, the others (within
 * the grace window) receive the same successor.
 */
export function rotateRefreshToken(
  store: Store,
  keys: Keys,
  policy: SessionPolicy,
  token: string,
  at: number,
): RotationResult {
  if (!REFRESH_TOKEN_PATTERN.test(token)) return { ok: false, reason: 'invalid' }
  const presentedHash = hashToken(keys, token)
  return store.transaction((): RotationResult => {
    const row = store.get(
      store.db
        .selectFrom('refresh_tokens')
        .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
        .selectAll('sessions')
        .select(['refresh_tokens.expires_at as token_expires_at', 'refresh_tokens.used_at as token_used_at'])
        .where('refresh_tokens.token_hash', '=', presentedHash),
    )
    if (!row || row.revoked_at !== null) return { ok: false, reason: 'invalid' }
    const { token_expires_at: tokenExpiresAt, token_used_at: tokenUsedAt, ...session } = row
    if (tokenExpiresAt <= at || session.absolute_expires_at <= at) return { ok: false, reason: 'expired' }

    const successor = successorOf(keys, token)
    if (tokenUsedAt !== null) {
      if (at - tokenUsedAt > policy.refreshReuseGrace * 1000) {
        // A rotated token came back after the grace window: it was stolen, or
        // the client is broken. Either way the session can no longer be trusted.
        store.run(store.db.updateTable('sessions').set({ revoked_at: at }).where('id', '=', session.id))
        return { ok: false, reason: 'reused' }
      }
      const issued = store.get(
        store.db.selectFrom('refresh_tokens').select('expires_at').where('token_hash', '=', hashToken(keys, successor)),
      )
      if (!issued) return { ok: false, reason: 'invalid' }
      return { ok: true, session, refreshToken: { token: successor, expiresAt: issued.expires_at } }
    }

    const expiresAt = Math.min(at + policy.refreshTokenTtl * 1000, session.absolute_expires_at)
    store.run(store.db.updateTable('refresh_tokens').set({ used_at: at }).where('token_hash', '=', presentedHash))
    store.run(
      store.db.insertInto('refresh_tokens').values({
        token_hash: hashToken(keys, successor),
        session_id: session.id,
        created_at: at,
        expires_at: expiresAt,
        used_at: null,
      }),
    )
    store.run(
      store.db.updateTable('sessions').set({ expires_at: expiresAt, last_used_at: at }).where('id', '=', session.id),
    )
    return {
      ok: true,
      session: { ...session, expires_at: expiresAt, last_used_at: at },
      refreshToken: { token: successor, expiresAt },
    }
  })
}

/**
 * The session a refresh token belongs to, if the token is current (unused, or
 * used within the grace window) and its session active. Used by logout.
 */
export function findSessionByRefreshToken(
  store: Store,
  keys: Keys,
  policy: SessionPolicy,
  token: string,
  at: number,
  options: { allowUsed: boolean },
): SessionRow | undefined {
  if (!REFRESH_TOKEN_PATTERN.test(token)) return undefined
  const row = store.get(
    store.db
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .selectAll('sessions')
      .select(['refresh_tokens.expires_at as token_expires_at', 'refresh_tokens.used_at as token_used_at'])
      .where('refresh_tokens.token_hash', '=', hashToken(keys, token)),
  )
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

/** The values `createSessionLookup` reads, in the order of its select list. */
type SessionLookupValues = [
  sessionId: string,
  lastUsedAt: number,
  expiresAt: number,
  revokedAt: number | null,
  userId: string,
  email: string,
  displayName: string | null,
  createdAt: number,
  updatedAt: number,
]

/**
 * The per-request check: the session of an access token, with its user, if the
 * session is still active. One primary-key lookup on a statement compiled once,
 * read as values rather than a row object (`Store.values`).
 */
export function createSessionLookup(store: Store): (sessionId: string, at: number) => AuthenticatedSession | undefined {
  const query = store.db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
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
    ])
    .where('sessions.id', '=', '')
    .compile()
  return (sessionId, at) => {
    const values = store.values(query, [sessionId]) as SessionLookupValues | undefined
    if (!values) return undefined
    const [id, lastUsedAt, expiresAt, revokedAt, userId, email, displayName, createdAt, updatedAt] = values
    if (revokedAt !== null || expiresAt <= at) return undefined
    return {
      sessionId: id,
      lastUsedAt,
      user: { id: userId, email, display_name: displayName, created_at: createdAt, updated_at: updatedAt },
    }
  }
}

/** Records activity, at most once a minute per session so reads stay reads. */
export function touchSession(store: Store, session: AuthenticatedSession, at: number): void {
  if (at - session.lastUsedAt < LAST_USED_RESOLUTION_MS) return
  store.run(store.db.updateTable('sessions').set({ last_used_at: at }).where('id', '=', session.sessionId))
}

export interface SessionView {
  id: string
  createdAt: string
  lastUsedAt: string
  expiresAt: string
  userAgent: string | null
  ip: string | null
  current: boolean
}

export function listActiveSessions(store: Store, userId: string, currentSessionId: string, at: number): SessionView[] {
  const rows = store.all(
    store.db
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', at)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc'),
  )
  return rows.map((row) => ({
    id: row.id,
    createdAt: toIso(row.created_at),
    lastUsedAt: toIso(row.last_used_at),
    expiresAt: toIso(row.expires_at),
    userAgent: row.user_agent,
    ip: row.ip,
    current: row.id === currentSessionId,
  }))
}

/** Revokes one active session of the user; false if there is none with that id. */
export function revokeSession(store: Store, userId: string, sessionId: string, at: number): boolean {
  return (
    store.run(
      store.db
        .updateTable('sessions')
        .set({ revoked_at: at })
        .where('id', '=', sessionId)
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', at),
    ) > 0
  )
}

/** Revokes every active session of the user except `keepSessionId` (all of them if null). */
export function revokeUserSessions(store: Store, userId: string, keepSessionId: string | null, at: number): number {
  let query = store.db
    .updateTable('sessions')
    .set({ revoked_at: at })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
  if (keepSessionId !== null) query = query.where('id', '!=', keepSessionId)
  return store.run(query)
}

/**
 * The queries that pick one batch of ended rows. Each is a range scan on its own
 * index (an `OR`, or `IS NOT NULL`, would scan the whole table on every batch);
 * exported for the query-plan test.
 */
export function endedRowQueries(store: Store, at: number, batchSize: number) {
  return {
    expiredSessions: store.db.selectFrom('sessions').select('id').where('expires_at', '<=', at).limit(batchSize),
    revokedSessions: store.db.selectFrom('sessions').select('id').where('revoked_at', '<=', at).limit(batchSize),
    expiredTokens: store.db
      .selectFrom('refresh_tokens')
      .select('token_hash')
      .where('expires_at', '<=', at)
      .limit(batchSize),
  }
}

/**
 * Deletes one batch of ended sessions (expired, then revoked; their refresh
 * tokens go with them), then of expired refresh tokens of live sessions, in one
 * short transaction. Returns the rows deleted; call again until it returns 0.
 */
export function deleteEndedSessionsBatch(store: Store, at: number, batchSize: number): number {
  const { expiredSessions, revokedSessions, expiredTokens } = endedRowQueries(store, at, batchSize)
  return store.transaction(
    () =>
      store.run(store.db.deleteFrom('sessions').where('id', 'in', expiredSessions)) ||
      store.run(store.db.deleteFrom('sessions').where('id', 'in', revokedSessions)) ||
      store.run(store.db.deleteFrom('refresh_tokens').where('token_hash', 'in', expiredTokens)),
  )
}
