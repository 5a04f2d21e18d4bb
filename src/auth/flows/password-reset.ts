// Password reset by mail. Asking answers the same (202), after the same work,
// whether or not the address has an account: the request only queues a job for
// the address, and the sender finds out in the background whether there is
// anyone to write to. Following the link sets a password by the sign-up rules,
// ends every session and every other reset link of the user, proves the address,
// lifts the failed-login limits of the email (the owner is back) and tells the
// address that the password changed.

import { weakPassword } from '../../errors.js'
import { enqueueMail } from '../../mail/queue.js'
import { peekOneTimeToken, revokeOneTimeTokens, takeOneTimeToken } from '../one-time-tokens.js'
import { passwordWeakness } from '../passwords.js'
import { revokeUserSessions } from '../sessions.js'
import { findUserById, markEmailVerified, normalizeEmail, setPasswordHash } from '../users.js'
import { type EmailFlowContext, MAIL, requestLinkMail, tokenRefused } from './email-context.js'

export async function requestPasswordReset(
  context: EmailFlowContext,
  client: { ip: string },
  input: { email: string },
): Promise<void> {
  await requestLinkMail(context, client, normalizeEmail(input.email), MAIL.passwordReset)
}

export async function resetPassword(
  context: EmailFlowContext,
  client: { ip: string },
  input: { token: string; newPassword: string },
): Promise<void> {
  // A dead link is refused before any hashing: a guessed token costs no argon2.
  const peek = await peekOneTimeToken(context.db, context.keys, 'password-reset', input.token, context.clock.now())
  if (!peek.ok) throw tokenRefused(peek.reason)
  const weakness = await passwordWeakness(input.newPassword)
  if (weakness) throw weakPassword('newPassword', weakness)
  const passwordHash = await context.passwords.hash(input.newPassword)
  const at = context.clock.now()
  const email = await context.db.transaction().execute(async (trx) => {
    const grant = await takeOneTimeToken(trx, context.keys, 'password-reset', input.token, at)
    if (!grant.ok) throw tokenRefused(grant.reason)
    const user = await findUserById(trx, grant.userId)
    // A link mailed to an address the account no longer has is dead.
    if (!user || user.email !== grant.email) throw tokenRefused('invalid')
    await setPasswordHash(trx, user.id, passwordHash, at)
    await revokeUserSessions(trx, user.id, null, at)
    await revokeOneTimeTokens(trx, user.id, 'password-reset')
    await markEmailVerified(trx, user.id, user.email, at)
    await enqueueMail(trx, { purpose: MAIL.passwordChanged, recipient: user.email, userId: user.id }, at)
    return user.email
  })
  context.mailQueued()
  await context.loginThrottle.succeeded({ email, ip: client.ip, trustedDevice: false })
}
