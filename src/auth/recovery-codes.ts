// Recovery codes: ten single-use codes given when TOTP is turned on (and when
// the user asks for new ones), for the day the authenticator is lost. Each is
// 10 characters of Crockford's base32 (50 bits; o, i and l are read as 0, 1, 1),
// shown as `xxxxx-xxxxx` once, and stored only as a keyed hash bound to its
// user. Using one deletes it, in one statement, so it works once.
import { createHmac, randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../db/database.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database> | Transaction<Database>

export const RECOVERY_CODE_COUNT = 10
const CODE_LENGTH = 10
/** Crockford's base32: no i, l, o or u, so a code read off paper is typed right. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

const hashOf = (keys: Keys, userId: string, code: string): string =>
  createHmac('sha256', keys.oneTimeTokenHash).update(`recovery-code\u0000${userId}\u0000${code}`).digest('base64url')

function newCode(): string {
  const bytes = randomBytes(CODE_LENGTH)
  let code = ''
  for (const byte of bytes) code += ALPHABET[byte & 31]
  return code
}

/** A typed code in its stored form: case, spaces and hyphens ignored, look-alikes read as Crockford does; undefined if it cannot be one. */
export function normalizeRecoveryCode(input: string): string | undefined {
  const code = input.toLowerCase().replace(/[\s-]/g, '').replace(/o/g, '0').replace(/[il]/g, '1')
  if (code.length !== CODE_LENGTH) return undefined
  for (const char of code) if (!ALPHABET.includes(char)) return undefined
  return code
}

const display = (code: string) => `${code.slice(0, 5)}-${code.slice(5)}`

/** Replaces the user's codes with ten new ones; answers them, the only time they are seen. */
export async function replaceRecoveryCodes(db: Db, keys: Keys, userId: string, at: number): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newCode)
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
  await db
    .insertInto('recovery_codes')
    .values(codes.map((code) => ({ code_hash: hashOf(keys, userId, code), user_id: userId, created_at: at })))
    .execute()
  return codes.map(display)
}

/** Uses a code of the user: true once, then never again. */
export async function takeRecoveryCode(db: Db, keys: Keys, userId: string, input: string): Promise<boolean> {
  const code = normalizeRecoveryCode(input)
  if (code === undefined) return false
  const result = await db
    .deleteFrom('recovery_codes')
    .where('code_hash', '=', hashOf(keys, userId, code))
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return Number(result.numDeletedRows) === 1
}

export async function countRecoveryCodes(db: Db, userId: string): Promise<number> {
  const row = await db
    .selectFrom('recovery_codes')
    .select((eb) => eb.fn.countAll<number | string | bigint>().as('count'))
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

export async function deleteRecoveryCodes(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
}
