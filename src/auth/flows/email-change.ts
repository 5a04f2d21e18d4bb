// Changing the account's address (PATCH /users/me). Without
// REQUIRE_EMAIL_VERIFICATION the address changes at once, unverified: the new
// address gets a verification mail and the old one a notice. With it, the
// address changes only when the link mailed to the new address is followed (the
// old address is told of the request); a taken address is refused when asked
// and again at confirmation, where another account may have taken it meanwhile.
import { AppError } from '../../errors.js'
import { enqueueMail } from '../../mail/queue.js'
import { revokeOneTimeTokens, takeOneTimeToken } from '../one-time-tokens.js'
import {
  findUserByEmail,
  findUserById,
  markEmailVerified,
  normalizeEmail,
  type UserAccount,
  type UserRecord,
  updateUserProfile,
} from '../users.js'
import { type EmailFlowContext, MAIL, throttleMail, tokenRefused } from './email-context.js'

interface Caller {
  userId: string
  email: string
  ip: string
}

/** Applies a profile change; an email change takes effect now or waits for its link (see above). */
export async function updateProfile(
  context: EmailFlowContext,
  caller: Caller,
  input: { displayName?: string | null | undefined; email?: string | undefined },
): Promise<UserRecord | undefined> {
  const newEmail = input.email === undefined ? undefined : normalizeEmail(input.email)
  const at = context.clock.now()
  const { db } = context
  if (newEmail === undefined || newEmail === caller.email) {
    return updateUserProfile(db, caller.userId, { displayName: input.displayName }, at)
  }
  const taken = await findUserByEmail(db, newEmail)
  if (taken && taken.id !== caller.userId) throw new AppError(409, 'EMAIL_TAKEN', 'That email is already registered')
  await throttleMail(context, newEmail, caller.ip)
  const user = await db.transaction().execute(async (trx) => {
    const pending = context.settings.requireEmailVerification
    const changed = await updateUserProfile(
      trx,
      caller.userId,
      pending ? { displayName: input.displayName } : { displayName: input.displayName, email: newEmail },
      at,
    )
    if (!changed) return undefined
    const notice = { newEmail, pending }
    await enqueueMail(
      trx,
      { purpose: MAIL.emailChangeNotice, recipient: caller.email, userId: caller.userId, payload: notice },
      at,
    )
    await enqueueMail(
      trx,
      pending
        ? { purpose: MAIL.emailChange, recipient: newEmail, userId: caller.userId, payload: { from: caller.email } }
        : { purpose: MAIL.emailVerification, recipient: newEmail, userId: caller.userId },
      at,
    )
    return changed
  })
  context.mailQueued()
  return user
}

/** Follows an email-change link: the new address becomes the account's, verified. */
export async function confirmEmailChange(context: EmailFlowContext, token: string): Promise<UserAccount> {
  const at = context.clock.now()
  return context.db.transaction().execute(async (trx) => {
    const grant = await takeOneTimeToken(trx, context.keys, 'email-change', token, at)
    if (!grant.ok) throw tokenRefused(grant.reason)
    const user = await findUserById(trx, grant.userId)
    if (!user) throw tokenRefused('invalid')
    // 409 EMAIL_TAKEN if another account has the address by now (the token stays, as nothing changed).
    if (user.email !== grant.email) await updateUserProfile(trx, user.id, { email: grant.email }, at)
    await markEmailVerified(trx, user.id, grant.email, at)
    await revokeOneTimeTokens(trx, user.id, 'email-change')
    const changed = await findUserById(trx, user.id)
    if (!changed) throw tokenRefused('invalid')
    return changed
  })
}
