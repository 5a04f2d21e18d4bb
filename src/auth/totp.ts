// TOTP (RFC 6238) by otpauth: SHA-1, six digits, 30-second steps, the
// parameters every authenticator app reads from an otpauth:// URI. The secret
// is sealed at rest like secret messages (src/data/crypto.ts), bound to its
// user. A code is accepted for the current step or one step either side (clock
// drift), and only for a step newer than the last one accepted: a code is never
// accepted twice, nor is an older code once a newer one was.
import type { Kysely, Transaction } from 'kysely'
import { Secret, TOTP } from 'otpauth'
import { open, seal } from '../data/crypto.js'
import type { Database } from '../db/database.js'
import type { Keys } from './keys.js'

type Db = Kysely<Database> | Transaction<Database>

const PERIOD = 30
const DIGITS = 6
/** Steps either side of now whose codes are accepted. */
const DRIFT_STEPS = 1
/** 160 bits, RFC 4226's recommendation for HMAC-SHA-1. */
const SECRET_BYTES = 20

const CODE_PATTERN = /^\d{6}$/

const associatedData = (userId: string) => `totp_credentials:${userId}`

export interface TotpSetup {
  /** Base32, as authenticator apps take it typed in. */
  secret: string
  otpauthUri: string
}

export interface TotpState {
  secret: string
  confirmed: boolean
  lastUsedStep: number | null
}

const totpOf = (secret: string, issuer: string, account: string) =>
  new TOTP({
    issuer,
    label: account,
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: DIGITS,
    period: PERIOD,
  })

/**
 * Starts (or restarts) set-up: a new secret, stored unconfirmed; an unconfirmed
 * earlier one is replaced. The caller checks that TOTP is not enabled already.
 */
export async function startTotpSetup(
  db: Db,
  keys: Keys,
  user: { id: string; email: string },
  issuer: string,
  at: number,
): Promise<TotpSetup> {
  const secret = new Secret({ size: SECRET_BYTES }).base32
  const sealed = seal(keys, associatedData(user.id), secret)
  const row = { key_id: sealed.keyId, nonce: sealed.nonce, ciphertext: sealed.ciphertext, created_at: at }
  await db
    .insertInto('totp_credentials')
    .values({ user_id: user.id, ...row, confirmed_at: null, last_used_step: null })
    .onConflict((conflict) =>
      conflict.column('user_id').doUpdateSet(row).where('totp_credentials.confirmed_at', 'is', null),
    )
    .execute()
  return { secret, otpauthUri: totpOf(secret, issuer, user.email).toString() }
}

export async function readTotp(db: Db, keys: Keys, userId: string): Promise<TotpState | undefined> {
  const row = await db.selectFrom('totp_credentials').selectAll().where('user_id', '=', userId).executeTakeFirst()
  if (!row) return undefined
  const secret = open(keys, associatedData(userId), {
    keyId: row.key_id,
    nonce: Buffer.from(row.nonce),
    ciphertext: Buffer.from(row.ciphertext),
  })
  return {
    secret,
    confirmed: row.confirmed_at !== null,
    lastUsedStep: row.last_used_step === null ? null : Number(row.last_used_step),
  }
}

/** Whether the user has a confirmed TOTP factor. */
export async function hasTotp(db: Db, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('totp_credentials')
    .select('user_id')
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is not', null)
    .executeTakeFirst()
  return row !== undefined
}

/** The time step `code` is valid for at `at` (within the drift window), or undefined. */
export function stepOfCode(secret: string, code: string, at: number): number | undefined {
  if (!CODE_PATTERN.test(code)) return undefined
  const delta = TOTP.validate({
    token: code,
    secret: Secret.fromBase32(secret),
    algorithm: 'SHA1',
    digits: DIGITS,
    period: PERIOD,
    timestamp: at,
    window: DRIFT_STEPS,
  })
  if (delta === null) return undefined
  return TOTP.counter({ period: PERIOD, timestamp: at }) + delta
}

/**
 * Accepts `code` once: records its step if it is newer than the last accepted
 * one, in one conditional update, so two concurrent uses of one code (on any
 * instance) cannot both pass. With `confirmAt`, set-up completes with it.
 */
export async function acceptTotpCode(
  db: Db,
  keys: Keys,
  userId: string,
  code: string,
  at: number,
  options: { confirming: boolean },
): Promise<boolean> {
  const state = await readTotp(db, keys, userId)
  if (!state || state.confirmed === options.confirming) return false
  const step = stepOfCode(state.secret, code, at)
  if (step === undefined) return false
  const result = await db
    .updateTable('totp_credentials')
    .set(options.confirming ? { last_used_step: step, confirmed_at: at } : { last_used_step: step })
    .where('user_id', '=', userId)
    .where((eb) => eb.or([eb('last_used_step', 'is', null), eb('last_used_step', '<', step)]))
    .where('confirmed_at', options.confirming ? 'is' : 'is not', null)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

export async function deleteTotp(db: Db, userId: string): Promise<boolean> {
  const result = await db.deleteFrom('totp_credentials').where('user_id', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}
