// Second factors: TOTP with recovery codes, and the login step that asks for
// one. With TOTP on, the right password (or a sign-in link) starts no session:
// it answers an mfaToken (src/auth/challenges.ts), bound to the user, used
// once, good for five minutes and for five wrong codes; `verifySecondFactor`
// takes it with a TOTP or recovery code and the route then starts the session
// like a login. Wrong codes count against the same failed-login limits as
// wrong passwords. A passkey is both factors at once (./passkeys.ts), so
// having one does not make a password login ask for a code.

import type { Kysely } from 'kysely'
import type { Database } from '../../db/database.js'
import { prepareReadFirst } from '../../db/prepared.js'
import { AppError, loginThrottled } from '../../errors.js'
import { enqueueMail } from '../../mail/queue.js'
import {
  countFailedAttempt,
  issueChallenge,
  MFA_TOKEN_MAX_ATTEMPTS,
  peekChallenge,
  takeChallenge,
} from '../challenges.js'
import { findDeviceTokenUser } from '../device-tokens.js'
import { countRecoveryCodes, deleteRecoveryCodes, replaceRecoveryCodes, takeRecoveryCode } from '../recovery-codes.js'
import type { SignInMethod } from '../sessions.js'
import { acceptTotpCode, deleteTotp, hasTotp, readTotp, startTotpSetup, type TotpSetup } from '../totp.js'
import { findUserById, type UserAccount } from '../users.js'
import { type EmailFlowContext, MAIL } from './email-context.js'
import type { LoginClient } from './log-in.js'

/** A signed-in user acting on their own account. */
export interface Caller {
  userId: string
  sessionId: string
  email: string
  ip: string
  userAgent: string | null
}

/** What a login answers instead of a session while a second factor is due (API.md section 7). */
export interface MfaRequired {
  mfaRequired: true
  mfaToken: string
  factors: SecondFactorKind[]
}

export type SecondFactorKind = 'totp' | 'recovery_code'

/** What the first step proved; the session's sign-in method adds the second factor to it. */
type FirstFactor = 'password' | 'link'

export interface Factors {
  totp: boolean
  passkeys: number
  recoveryCodes: number
}

/** The read of GET /users/me's factors, compiled once per database (src/db/prepared.ts). */
const factorReads = new WeakMap<Kysely<Database>, ReturnType<typeof prepareFactorsRead>>()

function prepareFactorsRead(db: Kysely<Database>) {
  const query = db.selectNoFrom((eb) => [
    eb
      .selectFrom('totp_credentials')
      .select((inner) => inner.fn.countAll().as('n'))
      .where('user_id', '=', '')
      .where('confirmed_at', 'is not', null)
      .as('totp'),
    eb
      .selectFrom('passkeys')
      .select((inner) => inner.fn.countAll().as('n'))
      .where('user_id', '=', '')
      .as('passkeys'),
    eb
      .selectFrom('recovery_codes')
      .select((inner) => inner.fn.countAll().as('n'))
      .where('user_id', '=', '')
      .as('recovery_codes'),
  ])
  type Row = NonNullable<Awaited<ReturnType<typeof query.executeTakeFirst>>>
  return prepareReadFirst<Row>(db, query)
}

/** The account's factors, in one round trip (GET /users/me answers them on every call). */
export async function factorsOf(context: EmailFlowContext, userId: string): Promise<Factors> {
  let read = factorReads.get(context.db)
  if (!read) {
    read = prepareFactorsRead(context.db)
    factorReads.set(context.db, read)
  }
  const row = await read([userId, userId, userId])
  const count = (value: unknown) => Number(value ?? 0)
  return { totp: count(row?.totp) > 0, passkeys: count(row?.passkeys), recoveryCodes: count(row?.recovery_codes) }
}

const codeInvalid = () => new AppError(401, 'MFA_CODE_INVALID', 'The code is wrong or was already used')
const mfaTokenInvalid = () =>
  new AppError(401, 'MFA_TOKEN_INVALID', 'This sign-in attempt is no longer valid; log in again')
const totpNotEnabled = () => new AppError(409, 'TOTP_NOT_ENABLED', 'TOTP is not on for this account')

/**
 * After the first factor: an mfaToken when the account has a second factor,
 * else undefined (the caller starts the session).
 */
export async function requireSecondFactor(
  context: EmailFlowContext,
  user: { id: string },
  first: FirstFactor,
): Promise<MfaRequired | undefined> {
  if (!(await hasTotp(context.db, user.id))) return undefined
  const at = context.clock.now()
  const mfaToken = await issueChallenge(context.db, context.keys, 'mfa', { userId: user.id, detail: first }, at)
  context.events.metrics.login('mfa')
  const factors: SecondFactorKind[] = ['totp']
  if ((await countRecoveryCodes(context.db, user.id)) > 0) factors.push('recovery_code')
  return { mfaRequired: true, mfaToken, factors }
}

/**
 * The second step of a login: takes the mfaToken with a TOTP code or a
 * recovery code, and answers whom to sign in and how.
 */
export async function verifySecondFactor(
  context: EmailFlowContext,
  client: LoginClient,
  input: { mfaToken: string; code?: string | undefined; recoveryCode?: string | undefined },
): Promise<{ user: UserAccount; method: SignInMethod }> {
  const { db, keys, clock } = context
  const pending = await peekChallenge(db, keys, 'mfa', input.mfaToken, clock.now())
  if (!pending.ok || pending.userId === null) throw mfaTokenInvalid()
  const user = await findUserById(db, pending.userId)
  if (!user) throw mfaTokenInvalid()
  const first: FirstFactor = pending.detail === 'link' ? 'link' : 'password'
  const { ip } = client
  const userAgent = client.userAgent ?? null
  // As at login: a device cookie of this account lets it past the account-wide ceiling.
  const deviceUserId =
    client.deviceTokenHash === undefined
      ? undefined
      : await findDeviceTokenUser(db, client.deviceTokenHash, clock.now())
  const attempt = { email: user.email, ip, trustedDevice: deviceUserId === user.id }
  const wait = await context.loginThrottle.attempt(attempt)
  if (wait > 0) {
    await context.events.recordUnlessRecent(db, { type: 'login_throttled', userId: user.id, ip, userAgent }, 60_000)
    throw loginThrottled(wait)
  }
  const at = clock.now()
  // The token and the code are used in one transaction: a wrong code rolls the
  // token's deletion back, and of two concurrent right answers one wins.
  let outcome: 'totp' | 'recovery_code'
  try {
    outcome = await db.transaction().execute(async (trx) => {
      const taken = await takeChallenge(trx, keys, 'mfa', input.mfaToken, at)
      if (!taken.ok || taken.userId !== user.id) throw mfaTokenInvalid()
      if (input.code !== undefined) {
        if (await acceptTotpCode(trx, keys, user.id, input.code, at, { confirming: false })) return 'totp' as const
        throw codeInvalid()
      }
      if (input.recoveryCode === undefined || !(await takeRecoveryCode(trx, keys, user.id, input.recoveryCode))) {
        throw codeInvalid()
      }
      const remaining = await countRecoveryCodes(trx, user.id)
      await context.events.record(trx, { type: 'recovery_code_used', userId: user.id, ip, userAgent })
      await enqueueMail(
        trx,
        { purpose: MAIL.recoveryCodeUsed, recipient: user.email, userId: user.id, payload: { remaining } },
        at,
      )
      return 'recovery_code' as const
    })
  } catch (error) {
    if (error instanceof AppError && error.code === 'MFA_CODE_INVALID') {
      await countFailedAttempt(db, keys, 'mfa', input.mfaToken, MFA_TOKEN_MAX_ATTEMPTS)
      await context.events.record(db, { type: 'login_failed', userId: user.id, ip, userAgent })
      context.events.metrics.login('wrong_password')
    }
    throw error
  }
  if (outcome === 'recovery_code') context.mailQueued()
  await context.loginThrottle.succeeded(attempt)
  return { user, method: `${first}+${outcome}` as SignInMethod }
}

/** Starts TOTP set-up: a new secret and its otpauth:// URI (not on until confirmed with a code). */
export async function setUpTotp(context: EmailFlowContext, caller: Caller, issuer: string): Promise<TotpSetup> {
  if (await hasTotp(context.db, caller.userId)) {
    throw new AppError(409, 'TOTP_ALREADY_ENABLED', 'TOTP is already on; turn it off first')
  }
  return startTotpSetup(
    context.db,
    context.keys,
    { id: caller.userId, email: caller.email },
    issuer,
    context.clock.now(),
  )
}

/** Confirms set-up with a first code: TOTP is on, and ten recovery codes are answered (only now). */
export async function confirmTotp(context: EmailFlowContext, caller: Caller, code: string): Promise<string[]> {
  const at = context.clock.now()
  const { userId, sessionId, ip, userAgent } = caller
  return context.db.transaction().execute(async (trx) => {
    const state = await readTotp(trx, context.keys, userId)
    if (!state || state.confirmed) throw totpNotEnabled()
    if (!(await acceptTotpCode(trx, context.keys, userId, code, at, { confirming: true }))) throw codeInvalid()
    const codes = await replaceRecoveryCodes(trx, context.keys, userId, at)
    await context.events.record(trx, { type: 'totp_enabled', userId, sessionId, ip, userAgent })
    return codes
  })
}

/** Turns TOTP off; the recovery codes go with it. */
export async function disableTotp(context: EmailFlowContext, caller: Caller): Promise<void> {
  const { userId, sessionId, ip, userAgent } = caller
  await context.db.transaction().execute(async (trx) => {
    const wasOn = await hasTotp(trx, userId)
    if (!(await deleteTotp(trx, userId)) || !wasOn) throw totpNotEnabled()
    await deleteRecoveryCodes(trx, userId)
    await context.events.record(trx, { type: 'totp_disabled', userId, sessionId, ip, userAgent })
  })
}

/** Ten new recovery codes; the old ones stop working. */
export async function regenerateRecoveryCodes(context: EmailFlowContext, caller: Caller): Promise<string[]> {
  return context.db.transaction().execute(async (trx) => {
    if (!(await hasTotp(trx, caller.userId))) throw totpNotEnabled()
    return replaceRecoveryCodes(trx, context.keys, caller.userId, context.clock.now())
  })
}

/** Step-up by a TOTP code instead of the password; a wrong code counts as a failed login. */
export async function confirmWithCode(context: EmailFlowContext, caller: Caller, code: string): Promise<void> {
  const attempt = { email: caller.email, ip: caller.ip, trustedDevice: false }
  const wait = await context.loginThrottle.attempt(attempt)
  if (wait > 0) {
    throw loginThrottled(wait)
  }
  if (!(await hasTotp(context.db, caller.userId))) throw totpNotEnabled()
  const accepted = await acceptTotpCode(context.db, context.keys, caller.userId, code, context.clock.now(), {
    confirming: false,
  })
  if (!accepted) {
    const { userId, sessionId, ip, userAgent } = caller
    await context.events.record(context.db, { type: 'login_failed', userId, sessionId, ip, userAgent })
    throw codeInvalid()
  }
  await context.loginThrottle.succeeded(attempt)
}
