// Short-lived, single-use secrets that any instance can finish, because they
// live in the shared database: the `mfaToken` of a login that waits for its
// second factor, and the challenges of WebAuthn ceremonies. Each is a random
// 256-bit value stored only as a keyed hash of its purpose and itself (so a
// secret made for one purpose is unknown to every other), expires after five
// minutes, and is used once: taking it deletes it in one statement, so two
// concurrent uses cannot both succeed.
import { createHmac, randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/database.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database> | Transaction<Database>

export type ChallengePurpose = 'mfa' | 'passkey-registration' | 'passkey-authentication'

export const CHALLENGE_TTL_MS = 5 * 60 * 1000
/** Wrong codes one mfaToken takes before it ends (the per-account failed-login limit counts them too). */
export const MFA_TOKEN_MAX_ATTEMPTS = 5

/** Secrets are 43 base64url characters; anything else is not ours and is refused unhashed. */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/

const hashOf = (keys: Keys, purpose: ChallengePurpose, secret: string): string =>
  createHmac('sha256', keys.oneTimeTokenHash).update(`challenge\u0000${purpose}\u0000${secret}`).digest('base64url')

export interface ChallengeGrant {
  userId: string | null
  sessionId: string | null
  /** Purpose-specific detail, never a secret. */
  detail: string | null
  attempts: number
}

export type ChallengeCheck = ({ ok: true } & ChallengeGrant) | { ok: false; reason: 'invalid' | 'expired' }

/** Makes a secret for `purpose` and stores its hash; expired challenges go in passing. */
export async function issueChallenge(
  db: Db,
  keys: Keys,
  purpose: ChallengePurpose,
  grant: { userId?: string | null; sessionId?: string | null; detail?: string | null },
  at: number,
): Promise<string> {
  const secret = randomBytes(32).toString('base64url')
  await db
    .insertInto('auth_challenges')
    .values({
      challenge_hash: hashOf(keys, purpose, secret),
      purpose,
      user_id: grant.userId ?? null,
      session_id: grant.sessionId ?? null,
      detail: grant.detail ?? null,
      created_at: at,
      expires_at: at + CHALLENGE_TTL_MS,
    })
    .execute()
  return secret
}

type ChallengeRow = {
  purpose: string
  user_id: string | null
  session_id: string | null
  detail: string | null
  attempts: number
  expires_at: number
}
const COLUMNS = ['purpose', 'user_id', 'session_id', 'detail', 'attempts', 'expires_at'] as const

function checkOf(row: ChallengeRow | undefined, purpose: ChallengePurpose, at: number): ChallengeCheck {
  if (!row || row.purpose !== purpose) return { ok: false, reason: 'invalid' }
  if (row.expires_at <= at) return { ok: false, reason: 'expired' }
  return {
    ok: true,
    userId: row.user_id,
    sessionId: row.session_id,
    detail: row.detail,
    attempts: Number(row.attempts),
  }
}

/** What a secret grants, without using it. */
export async function peekChallenge(
  db: Db,
  keys: Keys,
  purpose: ChallengePurpose,
  secret: string,
  at: number,
): Promise<ChallengeCheck> {
  if (!SECRET_PATTERN.test(secret)) return { ok: false, reason: 'invalid' }
  const row = await db
    .selectFrom('auth_challenges')
    .select(COLUMNS)
    .where('challenge_hash', '=', hashOf(keys, purpose, secret))
    .executeTakeFirst()
  return checkOf(row, purpose, at)
}

/** Uses a secret: deletes it and answers what it granted; once only, even under concurrent uses. */
export async function takeChallenge(
  db: Db,
  keys: Keys,
  purpose: ChallengePurpose,
  secret: string,
  at: number,
): Promise<ChallengeCheck> {
  if (!SECRET_PATTERN.test(secret)) return { ok: false, reason: 'invalid' }
  const row = await db
    .deleteFrom('auth_challenges')
    .where('challenge_hash', '=', hashOf(keys, purpose, secret))
    .returning(COLUMNS)
    .executeTakeFirst()
  return checkOf(row, purpose, at)
}

/**
 * Counts a wrong answer against a secret; it ends once `maxAttempts` were wrong.
 * Answers whether the secret is still usable.
 */
export async function countFailedAttempt(
  db: Db,
  keys: Keys,
  purpose: ChallengePurpose,
  secret: string,
  maxAttempts: number,
): Promise<boolean> {
  const hash = hashOf(keys, purpose, secret)
  const row = await db
    .updateTable('auth_challenges')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('challenge_hash', '=', hash)
    .returning('attempts')
    .executeTakeFirst()
  if (!row) return false
  if (Number(row.attempts) < maxAttempts) return true
  await db.deleteFrom('auth_challenges').where('challenge_hash', '=', hash).execute()
  return false
}

/** Deletes one batch of expired challenges (a range scan on auth_challenges_expires_at); returns how many went. */
export async function deleteExpiredChallenges(db: Db, at: number, batchSize: number): Promise<number> {
  const expired = db
    .selectFrom('auth_challenges')
    .select('challenge_hash')
    .where('expires_at', '<=', at)
    .limit(batchSize)
  const result = await db.deleteFrom('auth_challenges').where('challenge_hash', 'in', expired).executeTakeFirst()
  return Number(result.numDeletedRows)
}
