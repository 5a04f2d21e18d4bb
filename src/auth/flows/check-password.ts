// The one rule for every password check that counts as a login attempt (login,
// password confirmation, password change): take an attempt from the throttle
// before hashing (so parallel guesses cannot slip past the limit), verify in the
// same time whether or not the account exists, and forget the failures on success.

import type { UserRow } from '../../db/database.js'
import { invalidCredentials, loginThrottled } from '../../errors.js'
import type { LoginAttempt } from '../login-throttle.js'
import type { FlowContext } from './context.js'

/** Where an attempt comes from: the client's IP and whether it holds a device cookie of the account. */
export interface Client {
  ip: string
  trustedDevice?: boolean
}

export async function checkPassword(
  context: FlowContext,
  client: Client,
  email: string,
  user: UserRow | undefined,
  password: string,
): Promise<UserRow> {
  const attempt: LoginAttempt = { email, ip: client.ip, trustedDevice: client.trustedDevice ?? false }
  const wait = await context.loginThrottle.attempt(attempt)
  if (wait > 0) throw loginThrottled(wait)
  // Unknown emails are verified against a dummy hash: same answer, same time.
  const valid = await context.passwords.verify(user?.password_hash ?? null, password)
  if (!user || !valid) throw invalidCredentials()
  await context.loginThrottle.succeeded(attempt)
  return user
}
