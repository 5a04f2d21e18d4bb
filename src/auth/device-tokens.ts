// Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device
// Cookies"). Every sign-in leaves the client a random 256-bit value bound to the
// account and stored only as a keyed hash. It is not a credential: it never
// authenticates a request. It only tells the failed-login throttle that this
// client signed in to the account before, so guesses from elsewhere that exhaust
// the account-wide ceiling cannot lock the owner out.
import { createHmac, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Database } from '../db/database.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database>

/** The cookie's Max-Age and the row's lifetime: 90 days, in seconds. */
export const DEVICE_TOKEN_TTL = 90 * 24 * 60 * 60
/**
 * Device tokens kept per user; issuing one beyond it ends the oldest. Browsers
 * replace theirs at each sign-in, but a client without a cookie jar gets a new
 * one every time, and those rows would otherwise pile up for 90 days.
 */
export const DEVICE_TOKENS_PER_USER = 100

/** Device tokens are 43 base64url characters; anything else is not ours. */
const DEVICE_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

const keyedHash = (keys: Keys, token: string) =>
  createHmac('sha256', keys.deviceTokenHash).update(token).digest('base64url')

/** The stored form of a presented device token; undefined when it is not of our shape. */
export function hashDeviceToken(keys: Keys, token: string): string | undefined {
  return DEVICE_TOKEN_PATTERN.test(token) ? keyedHash(keys, token) : undefined
}

/**
 * Issues a device token for the user. The token the client presented (its
 * hash, `replacing`) is deleted if it was this user's, so a browser holds one
 * row per account; another account's token is left alone.
 */
export async function issueDeviceToken(
  db: Db,
  keys: Keys,
  userId: string,
  at: number,
  replacing?: string,
): Promise<string> {
  const token = randomBytes(32).toString('base64url')
  const tokenHash = keyedHash(keys, token)
  await db.transaction().execute(async (trx) => {
    if (replacing !== undefined) {
      await trx.deleteFrom('device_tokens').where('token_hash', '=', replacing).where('user_id', '=', userId).execute()
    }
    await trx
      .insertInto('device_tokens')
      .values({ token_hash: tokenHash, user_id: userId, created_at: at, expires_at: at + DEVICE_TOKEN_TTL * 1000 })
      .execute()
    // The newest DEVICE_TOKENS_PER_USER stay (a few more on a tie of milliseconds).
    const oldestKept = await trx
      .selectFrom('device_tokens')
      .select('created_at')
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .limit(1)
      .offset(DEVICE_TOKENS_PER_USER - 1)
      .executeTakeFirst()
    if (oldestKept) {
      await trx
        .deleteFrom('device_tokens')
        .where('user_id', '=', userId)
        .where('created_at', '<', oldestKept.created_at)
        .execute()
    }
  })
  return token
}

/** The user a device token (by its hash) is bound to, while it lasts. */
export async function findDeviceTokenUser(db: Db, tokenHash: string, at: number): Promise<string | undefined> {
  const row = await db
    .selectFrom('device_tokens')
    .select(['user_id', 'expires_at'])
    .where('token_hash', '=', tokenHash)
    .executeTakeFirst()
  return row && row.expires_at > at ? row.user_id : undefined
}

/** One batch of expired device tokens, for the session cleanup; a range scan on device_tokens_expires_at. */
export function expiredDeviceTokensQuery(db: Db, at: number, batchSize: number) {
  return db.selectFrom('device_tokens').select('token_hash').where('expires_at', '<=', at).limit(batchSize)
}
