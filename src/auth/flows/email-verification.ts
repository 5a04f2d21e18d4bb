// Email verification: sign-up (and an address change that takes effect at once)
// queues a verification mail; the access-token holder may ask for another
// (rate-limited); following the link marks the address verified. With
// REQUIRE_EMAIL_VERIFICATION, login and refresh are refused until then.
import { AppError } from '../../errors.js'
import { enqueueMail } from '../../mail/queue.js'
import { revokeOneTimeTokens, takeOneTimeToken } from '../one-time-tokens.js'
import { findUserById, markEmailVerified, type UserAccount, type UserRecord } from '../users.js'
import { type EmailFlowContext, type EmailSettings, MAIL, throttleMail, tokenRefused } from './email-context.js'

/** Queues a verification mail for the user's current address (none when it is verified already). */
export async function requestEmailVerification(
  context: EmailFlowContext,
  user: Pick<UserRecord, 'id' | 'email'>,
  client: { ip: string; throttled: boolean },
): Promise<void> {
  if (client.throttled) await throttleMail(context, user.email, client.ip)
  const at = context.clock.now()
  const current = await findUserById(context.db, user.id)
  if (!current || current.email_verified) return
  await enqueueMail(context.db, { purpose: MAIL.emailVerification, recipient: current.email, userId: current.id }, at)
  context.mailQueued()
}

/** Follows a verification link: the address it was mailed to is verified, if it is still the user's. */
export async function confirmEmailVerification(context: EmailFlowContext, token: string): Promise<UserAccount> {
  const at = context.clock.now()
  return context.db.transaction().execute(async (trx) => {
    const grant = await takeOneTimeToken(trx, context.keys, 'email-verification', token, at)
    if (!grant.ok) throw tokenRefused(grant.reason)
    const user = await findUserById(trx, grant.userId)
    if (!user || user.email !== grant.email) throw tokenRefused('invalid')
    await markEmailVerified(trx, user.id, user.email, at)
    // The other verification links of the user have nothing left to do.
    await revokeOneTimeTokens(trx, user.id, 'email-verification')
    return { ...user, email_verified: true }
  })
}

/** REQUIRE_EMAIL_VERIFICATION: login and refresh wait for a verified address. */
export function requireVerifiedEmail(
  settings: Pick<EmailSettings, 'requireEmailVerification'>,
  verified: boolean,
): void {
  if (settings.requireEmailVerification && !verified) {
    throw new AppError(
      403,
      'EMAIL_NOT_VERIFIED',
      'Confirm your email address first: follow the link in the verification mail',
    )
  }
}
