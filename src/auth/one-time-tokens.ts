// One-time tokens of mailed links (email verification, password reset, email
// change, sign-in link). Each is a random 256-bit value stored only as a keyed
// hash of its purpose and itself, so a token made for one purpose is simply
// unknown to every other; bound to a user and to the address it was mailed to;
// used once (taking it deletes it, in one statement, so two concurrent uses
// cannot both succeed); and it expires.
import { createHmac, randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/database.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database> | Transaction<Database>

export type OneTimeTokenPurpose = 'email-verification' | 'password-reset' | 'email-change' | 'sign-in-link'

/** Tokens are 43 base64url characters; anything else is not ours and is refused unhashed. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

const hashOf = (keys: Keys, purpose: OneTimeTokenPurpose, token: string): string =>
  createHmac('sha256', keys.oneTimeTokenHash).update(`${purpose}\u0000${token}`).digest('base64url')

export interface TokenGrant {
  purpose: OneTimeTokenPurpose
  userId: string
  email: string
  /** Epoch milliseconds. */
  expiresAt: number
}

/**
 * Makes a token and stores its hash. With `replacing`, the user's other tokens
 * of this purpose end (a newer email-change request supersedes an older one).
 * Expired tokens of the user go in passing.
 */
export async function issueOneTimeToken(
  db: Db,
  keys: Keys,
  grant: TokenGrant,
  at: number,
  options: { replacing?: boolean } = {},
): Promise<string> {
  const token = randomBytes(32).toString('base64url')
  let stale = db.deleteFrom('one_time_tokens').where('user_id', '=', grant.userId)
  stale = options.replacing
    ? stale.where((eb) => eb.or([eb('purpose', '=', grant.purpose), eb('expires_at', '<=', at)]))
    : stale.where('expires_at', '<=', at)
  await stale.execute()
  await db
    .insertInto('one_time_tokens')
    .values({
      token_hash: hashOf(keys, grant.purpose, token),
      purpose: grant.purpose,
      user_id: grant.userId,
      email: grant.email,
      created_at: at,
      expires_at: grant.expiresAt,
    })
    .execute()
  return token
}

export type TokenCheck = { ok: true; userId: string; email: string } | { ok: false; reason: 'invalid' | 'expired' }

const INVALID: TokenCheck = { ok: false, reason: 'invalid' }

/** What a token's row grants for `purpose` at `at`. */
function grantOf(
  row: { user_id: string; email: string; expires_at: number; purpose: string } | undefined,
  purpose: OneTimeTokenPurpose,
  at: number,
): TokenCheck {
  if (!row || row.purpose !== purpose) return INVALID
  if (row.expires_at <= at) return { ok: false, reason: 'expired' }
  return { ok: true, userId: row.user_id, email: row.email }
}

/** What a token would grant, without using it (so a flow can refuse before costly work). */
export async function peekOneTimeToken(
  db: Db,
  keys: Keys,
  purpose: OneTimeTokenPurpose,
  token: string,
  at: number,
): Promise<TokenCheck> {
  if (!TOKEN_PATTERN.test(token)) return INVALID
  const row = await db
    .selectFrom('one_time_tokens')
    .select(['user_id', 'email', 'expires_at', 'purpose'])
    .where('token_hash', '=', hashOf(keys, purpose, token))
    .executeTakeFirst()
  return grantOf(row, purpose, at)
}

/** Uses a token: deletes it and answers what it granted; once only, even under concurrent uses. */
export async function takeOneTimeToken(
  db: Db,
  keys: Keys,
  purpose: OneTimeTokenPurpose,
  token: string,
  at: number,
): Promise<TokenCheck> {
  if (!TOKEN_PATTERN.test(token)) return INVALID
  const row = await db
    .deleteFrom('one_time_tokens')
    .where('token_hash', '=', hashOf(keys, purpose, token))
    .returning(['user_id', 'email', 'expires_at', 'purpose'])
    .executeTakeFirst()
  return grantOf(row, purpose, at)
}

/** Ends every outstanding token of the user for `purpose` (a password reset ends the other reset links). */
export async function revokeOneTimeTokens(db: Db, userId: string, purpose: OneTimeTokenPurpose): Promise<void> {
  await db.deleteFrom('one_time_tokens').where('user_id', '=', userId).where('purpose', '=', purpose).execute()
}

/** Deletes one batch of expired tokens (a range scan on one_time_tokens_expires_at); returns how many went. */
export async function deleteExpiredOneTimeTokens(db: Db, at: number, batchSize: number): Promise<number> {
  const expired = db.selectFrom('one_time_tokens').select('token_hash').where('expires_at', '<=', at).limit(batchSize)
  const result = await db.deleteFrom('one_time_tokens').where('token_hash', 'in', expired).executeTakeFirst()
  return Number(result.numDeletedRows)
}
