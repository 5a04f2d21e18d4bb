// Writes the mail of a queued job, at send time: finds the account, checks that
// the request still stands, makes the link's one-time token and renders the
// text. The queue never held the token; it exists from here on only as its hash
// in one_time_tokens and in the mail itself. A link's lifetime counts from the
// request, so a mail delayed past it is not sent at all.
import type { MailJob } from '../../mail/queue.js'
import {
  emailChangeMail,
  emailChangeNotice,
  type LinkAction,
  linkTo,
  passwordChangedNotice,
  passwordResetMail,
  type RenderedMail,
  recoveryCodeUsedNotice,
  signInLinkMail,
  verificationMail,
} from '../../mail/templates.js'
import type { MailMessage } from '../../mail/transport.js'
import { issueOneTimeToken, type OneTimeTokenPurpose } from '../one-time-tokens.js'
import { findUserByEmail, findUserById, type UserAccount } from '../users.js'
import { type EmailFlowContext, MAIL } from './email-context.js'

export async function writeMail(context: EmailFlowContext, job: MailJob, at: number): Promise<MailMessage | null> {
  const { db, keys, settings } = context
  const message = (to: string, rendered: RenderedMail): MailMessage => ({ to, purpose: job.purpose, ...rendered })

  /** A link for `user`, bound to `email`, or null once the request is older than the link's lifetime. */
  async function link(
    user: UserAccount,
    purpose: OneTimeTokenPurpose,
    action: LinkAction,
    email: string,
    ttlSeconds: number,
  ): Promise<string | null> {
    const expiresAt = job.createdAt + ttlSeconds * 1000
    if (expiresAt <= at) return null
    const token = await issueOneTimeToken(
      db,
      keys,
      { purpose, userId: user.id, email, expiresAt },
      at,
      // A newer email-change request supersedes the older ones.
      { replacing: purpose === 'email-change' },
    )
    return linkTo(settings.publicUrl, action, token)
  }

  switch (job.purpose) {
    case MAIL.emailVerification: {
      const user = job.userId === null ? undefined : await findUserById(db, job.userId)
      // Verified meanwhile, or the address is no longer the account's: nothing to confirm.
      if (!user || user.email_verified || user.email !== job.recipient) return null
      const ttl = settings.emailVerificationTokenTtl
      const url = await link(user, 'email-verification', 'verify-email', user.email, ttl)
      return url === null ? null : message(user.email, verificationMail(url, ttl))
    }
    case MAIL.emailChange: {
      const user = job.userId === null ? undefined : await findUserById(db, job.userId)
      // Asked from an address the account no longer has: that request is over.
      if (!user || user.email !== job.payload.from) return null
      const ttl = settings.emailVerificationTokenTtl
      const url = await link(user, 'email-change', 'confirm-email-change', job.recipient, ttl)
      return url === null ? null : message(job.recipient, emailChangeMail(url, job.recipient, ttl))
    }
    case MAIL.emailChangeNotice: {
      const newEmail = job.payload.newEmail
      if (typeof newEmail !== 'string') return null
      return message(job.recipient, emailChangeNotice(newEmail, job.payload.pending === true))
    }
    case MAIL.passwordReset: {
      // Queued for any address: this is where an unknown one ends, unseen by the asker.
      const user = await findUserByEmail(db, job.recipient)
      if (!user) return null
      const ttl = settings.passwordResetTokenTtl
      const url = await link(user, 'password-reset', 'reset-password', user.email, ttl)
      return url === null ? null : message(user.email, passwordResetMail(url, ttl))
    }
    case MAIL.passwordChanged:
      return message(job.recipient, passwordChangedNotice())
    case MAIL.recoveryCodeUsed: {
      const remaining = job.payload.remaining
      return typeof remaining === 'number' ? message(job.recipient, recoveryCodeUsedNotice(remaining)) : null
    }
    case MAIL.signInLink: {
      const user = await findUserByEmail(db, job.recipient)
      if (!user) return null
      const ttl = settings.signInLinkTokenTtl
      const url = await link(user, 'sign-in-link', 'sign-in', user.email, ttl)
      return url === null ? null : message(user.email, signInLinkMail(url, ttl))
    }
    default:
      return null
  }
}
