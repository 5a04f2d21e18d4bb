// The one rule for every password check that counts as a login attempt (login,
// password confirmation, password change): take an attempt from the throttle
// before hashing (so parallel guesses cannot slip past the limit), verify in the
// same time whether or not the account exists, and forget the failures on success
// (for a login with a second factor due, once that factor is given).
// A refused attempt on an existing account is a security event of that account
// (an unknown email has none to attach it to).

import type { UserRow } from '../../db/database.js'
import { invalidCredentials, loginThrottled } from '../../errors.js'
import type { LoginAttempt } from '../login-throttle.js'
import type { FlowContext } from './context.js'

/** Where an attempt comes from: the client's IP and whether it holds a device cookie of the account. */
export interface Client {
  ip: string
  trustedDevice?: boolean
  /** For the security event: the client's user agent, and the session of a signed-in caller. */
  userAgent?: string | null | undefined
  sessionId?: string | undefined
}

const THROTTLED_EVENT_EVERY_MS = 60_000

export async function checkPassword(
  context: FlowContext,
  client: Client,
  email: string,
  user: UserRow | undefined,
  password: string,
  options: {
    /**
     * Whether a second factor is still due after this password (a login with
     * TOTP on): then the failures are not forgotten yet, so that guessing codes
     * between right passwords still meets the limit.
     */
    secondFactorDue?: (user: UserRow) => Promise<boolean>
  } = {},
): Promise<UserRow> {
  const attempt: LoginAttempt = { email, ip: client.ip, trustedDevice: client.trustedDevice ?? false }
  const refused = async (type: 'login_failed' | 'login_throttled') => {
    if (!user) return
    const { ip, userAgent, sessionId } = client
    const event = { type, userId: user.id, sessionId, ip, userAgent }
    // Failed attempts are bounded by the throttle; throttled ones are not: one row a minute at most.
    if (type === 'login_throttled') await context.events.recordUnlessRecent(context.db, event, THROTTLED_EVENT_EVERY_MS)
    else await context.events.record(context.db, event)
  }
  const wait = await context.loginThrottle.attempt(attempt)
  if (wait > 0) {
    await refused('login_throttled')
    throw loginThrottled(wait)
  }
  // Unknown emails are verified against a dummy hash: same answer, same time.
  const valid = await context.passwords.verify(user?.password_hash ?? null, password)
  if (!user || !valid) {
    await refused('login_failed')
    throw invalidCredentials()
  }
  if (!(await options.secondFactorDue?.(user))) await context.loginThrottle.succeeded(attempt)
  return user
}
