// Login by email and password; the account's hash is upgraded when today's
// argon2 parameters differ from the ones it was made with. A device cookie the
// client holds for this very account lets it past the account-wide failed-login
// ceiling (src/auth/device-tokens.ts).
import { AppError, accountDisabled } from '../../errors.js'
import { findDeviceTokenUser } from '../device-tokens.js'
import type { LoginOutcome } from '../security-events.js'
import { hasTotp } from '../totp.js'
import { findUserByEmail, normalizeEmail, setPasswordHash, type UserRecord } from '../users.js'
import { checkPassword } from './check-password.js'
import type { FlowContext } from './context.js'

/** Where a login comes from: the client's IP and the keyed hash of the device cookie it presented, if any. */
export interface LoginClient {
  ip: string
  deviceTokenHash?: string | undefined
  userAgent?: string | null | undefined
}

export async function logIn(
  context: FlowContext,
  client: LoginClient,
  input: { email: string; password: string },
): Promise<UserRecord> {
  const email = normalizeEmail(input.email)
  // The device token is looked up whether or not the email has an account, so
  // its cost says nothing about which emails exist.
  const found = await findUserByEmail(context.db, email)
  const deviceUserId =
    client.deviceTokenHash === undefined
      ? undefined
      : await findDeviceTokenUser(context.db, client.deviceTokenHash, context.clock.now())
  // A device cookie counts only for the account it was issued to.
  const trustedDevice = found !== undefined && deviceUserId === found.id
  let user: Awaited<ReturnType<typeof checkPassword>>
  try {
    user = await checkPassword(
      context,
      { ip: client.ip, trustedDevice, userAgent: client.userAgent },
      email,
      found,
      input.password,
      { secondFactorDue: (account) => hasTotp(context.db, account.id) },
    )
  } catch (error) {
    const outcome = failedLoginOutcome(error, found !== undefined)
    if (outcome) context.events.metrics.login(outcome)
    throw error
  }
  // Only after the right password: the answer says nothing to a guesser.
  if (user.disabled_at !== null) {
    context.events.metrics.login('disabled')
    throw accountDisabled()
  }
  context.events.metrics.login('ok')
  if (context.passwords.needsRehash(user.password_hash)) {
    // updated_at stays: the account did not change in any way its owner would see.
    await setPasswordHash(context.db, user.id, await context.passwords.hash(input.password), user.updated_at)
  }
  const { password_hash: _, ...record } = user
  return record
}

/** The metrics outcome of a refused login (none for other errors: a busy server, a database failure). */
function failedLoginOutcome(error: unknown, known: boolean): LoginOutcome | undefined {
  if (!(error instanceof AppError)) return undefined
  if (error.code === 'INVALID_CREDENTIALS') return known ? 'wrong_password' : 'unknown_email'
  if (error.code === 'RATE_LIMITED') return 'throttled'
  return undefined
}
