// Re-authentication and password change for a signed-in user. Both count a
// wrong password as a failed login; a change revokes every other session.
import { weakPassword } from '../../errors.js'
import { passwordWeakness } from '../passwords.js'
import { revokeUserSessions } from '../sessions.js'
import { findUserById, setPasswordHash } from '../users.js'
import { type Client, checkPassword } from './check-password.js'
import type { FlowContext } from './context.js'

interface Caller extends Client {
  userId: string
  sessionId: string
  email: string
}

/** Checks the caller's password (for a password-confirmation token). */
export async function confirmPassword(context: FlowContext, caller: Caller, password: string): Promise<void> {
  await checkPassword(context, caller, caller.email, await findUserById(context.db, caller.userId), password)
}

/** Sets a new password and ends every session of the user but the caller's. */
export async function changePassword(
  context: FlowContext,
  caller: Caller,
  input: { currentPassword: string; newPassword: string },
): Promise<void> {
  await confirmPassword(context, caller, input.currentPassword)
  const weakness = await passwordWeakness(input.newPassword)
  if (weakness) throw weakPassword('newPassword', weakness)
  const passwordHash = await context.passwords.hash(input.newPassword)
  const at = context.clock.now()
  const revoked = await context.db.transaction().execute(async (trx) => {
    await setPasswordHash(trx, caller.userId, passwordHash, at)
    const count = await revokeUserSessions(trx, caller.userId, caller.sessionId, at)
    const { userId, sessionId, ip, userAgent } = caller
    await context.events.record(trx, { type: 'password_changed', userId, sessionId, ip, userAgent })
    return count
  })
  context.events.metrics.sessionsRevoked('password_changed', revoked)
}
