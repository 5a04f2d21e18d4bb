// Passwordless sign-in by a mailed link (SIGN_IN_LINKS). Asking behaves like a
// password reset request (202, the same work for any address); following the
// link proves the address and signs in like a login (the route starts the
// session with the same tokens and cookies).
import { takeOneTimeToken } from '../one-time-tokens.js'
import { findUserById, markEmailVerified, normalizeEmail, type UserAccount } from '../users.js'
import { type EmailFlowContext, MAIL, requestLinkMail, tokenRefused } from './email-context.js'

export async function requestSignInLink(
  context: EmailFlowContext,
  client: { ip: string },
  input: { email: string },
): Promise<void> {
  await requestLinkMail(context, client, normalizeEmail(input.email), MAIL.signInLink)
}

/** The account a sign-in link opens; its address is verified by the same token. */
export async function signInWithLink(context: EmailFlowContext, token: string): Promise<UserAccount> {
  const at = context.clock.now()
  return context.db.transaction().execute(async (trx) => {
    const grant = await takeOneTimeToken(trx, context.keys, 'sign-in-link', token, at)
    if (!grant.ok) throw tokenRefused(grant.reason)
    const user = await findUserById(trx, grant.userId)
    if (!user || user.email !== grant.email) throw tokenRefused('invalid')
    if (!user.email_verified) await markEmailVerified(trx, user.id, user.email, at)
    return { ...user, email_verified: true }
  })
}
