// What the email flows work with: the flows' own context, the purpose keys
// (one-time token hashes), the mail settings, the mail throttle, and a way to
// wake the background sender once a job is queued. Built by plugins/mail.ts.

import type { Config } from '../../config.js'
import { AppError } from '../../errors.js'
import { enqueueMail } from '../../mail/queue.js'
import type { Keys } from '../keys.js'
import type { MailThrottle } from '../mail-throttle.js'
import type { FlowContext } from './context.js'

export type EmailSettings = Pick<
  Config,
  | 'publicUrl'
  | 'requireEmailVerification'
  | 'emailVerificationTokenTtl'
  | 'passwordResetTokenTtl'
  | 'signInLinkTokenTtl'
>

export interface EmailFlowContext extends FlowContext {
  keys: Keys
  settings: EmailSettings
  mailThrottle: MailThrottle
  /** A job was queued (and committed): the sender should look soon. */
  mailQueued(): void
}

/** The purposes of queued mails. */
export const MAIL = {
  emailVerification: 'email-verification',
  emailChange: 'email-change',
  emailChangeNotice: 'email-change-notice',
  passwordReset: 'password-reset',
  passwordChanged: 'password-changed',
  recoveryCodeUsed: 'recovery-code-used',
  signInLink: 'sign-in-link',
} as const

export type MailPurpose = (typeof MAIL)[keyof typeof MAIL]

/** The answer to a refused link token: expired, or anything else (unknown, used, another purpose, another address). */
export function tokenRefused(reason: 'invalid' | 'expired'): AppError {
  return reason === 'expired'
    ? new AppError(400, 'TOKEN_EXPIRED', 'This link has expired; ask for a new one')
    : new AppError(400, 'TOKEN_INVALID', 'This link is not valid (it may have been used already)')
}

/** Counts a request for a mail to `email` from `ip`; throws 429 RATE_LIMITED past a limit. */
export async function throttleMail(context: EmailFlowContext, email: string, ip: string): Promise<void> {
  const wait = await context.mailThrottle.take(email, ip)
  if (wait > 0) {
    throw new AppError(429, 'RATE_LIMITED', `Too many mails asked for; retry in ${wait} seconds`, undefined, {
      'Retry-After': String(wait),
    })
  }
}

/**
 * Asks for a link mail to an address (password reset, sign-in link): the same
 * answer after the same work whether or not it has an account. Only a job for
 * the address is queued; the sender finds out later whether anyone is there.
 */
export async function requestLinkMail(
  context: EmailFlowContext,
  client: { ip: string },
  email: string,
  purpose: typeof MAIL.passwordReset | typeof MAIL.signInLink,
): Promise<void> {
  await throttleMail(context, email, client.ip)
  await enqueueMail(context.db, { purpose, recipient: email }, context.clock.now())
  context.mailQueued()
}
