// The text of every mail, plain text and a small HTML twin. Links open the
// account page (PUBLIC_URL) with the action and the token in the URL fragment:
// a fragment never travels to a server, so the token stays out of proxy logs
// and Referer headers; the page reads it and posts it to the API.

export interface RenderedMail {
  subject: string
  text: string
  html: string
}

/** What a link asks the account page to do. */
export type LinkAction = 'verify-email' | 'reset-password' | 'confirm-email-change' | 'sign-in'

/** `PUBLIC_URL#action=...&token=...`. */
export function linkTo(publicUrl: string, action: LinkAction, token: string): string {
  const url = new URL(publicUrl)
  url.hash = new URLSearchParams({ action, token }).toString()
  return url.toString()
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c)

const minutesText = (seconds: number): string => {
  if (seconds % 86_400 === 0) return seconds === 86_400 ? '24 hours' : `${seconds / 86_400} days`
  if (seconds % 3600 === 0) return seconds === 3600 ? '1 hour' : `${seconds / 3600} hours`
  if (seconds >= 60) return `${Math.round(seconds / 60)} minutes`
  return `${seconds} seconds`
}

/** A mail of paragraphs, and optionally one button-like link. */
function compose(subject: string, paragraphs: string[], link?: { url: string; label: string }): RenderedMail {
  const text = [...paragraphs.slice(0, 1), ...(link ? [link.url] : []), ...paragraphs.slice(1)].join('\n\n')
  const htmlParagraphs = paragraphs.map((paragraph) => `<p>${escapeHtml(paragraph)}</p>`)
  const button = link ? [`<p><a href="${escapeHtml(link.url)}">${escapeHtml(link.label)}</a></p>`] : []
  const html = [
    '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">',
    ...htmlParagraphs.slice(0, 1),
    ...button,
    ...htmlParagraphs.slice(1),
    '</body></html>',
  ].join('\n')
  return { subject, text: `${text}\n`, html }
}

const IGNORE = 'If you did not ask for this, ignore this mail: nothing changes.'

export function verificationMail(link: string, ttlSeconds: number): RenderedMail {
  return compose(
    'Confirm your email address',
    [
      'Open this link to confirm your email address:',
      `The link works once, for ${minutesText(ttlSeconds)}.`,
      'If you did not sign up, ignore this mail: the address stays unconfirmed.',
    ],
    { url: link, label: 'Confirm my email address' },
  )
}

export function emailChangeMail(link: string, newEmail: string, ttlSeconds: number): RenderedMail {
  return compose(
    'Confirm your new email address',
    [
      `Open this link to make ${newEmail} the email address of your account:`,
      `The link works once, for ${minutesText(ttlSeconds)}. Until then, your account keeps its current address.`,
      IGNORE,
    ],
    { url: link, label: 'Confirm my new email address' },
  )
}

export function emailChangeNotice(newEmail: string, pending: boolean): RenderedMail {
  return compose(pending ? 'Your email address is about to change' : 'Your email address was changed', [
    pending
      ? `Someone signed in to your account asked to change its email address to ${newEmail}. The change happens when the link sent to that address is opened.`
      : `The email address of your account was changed to ${newEmail}.`,
    'If this was not you, change your password now and sign out of every session.',
  ])
}

export function passwordResetMail(link: string, ttlSeconds: number): RenderedMail {
  return compose(
    'Reset your password',
    [
      'Open this link to choose a new password:',
      `The link works once, for ${minutesText(ttlSeconds)}. Setting a new password signs you out everywhere.`,
      IGNORE,
    ],
    { url: link, label: 'Choose a new password' },
  )
}

export function passwordChangedNotice(): RenderedMail {
  return compose('Your password was changed', [
    'The password of your account was just reset, and every session was signed out.',
    'If this was not you, reset your password again at once.',
  ])
}

export function recoveryCodeUsedNotice(remaining: number): RenderedMail {
  return compose('A recovery code was used', [
    `Someone signed in to your account with one of its recovery codes; ${remaining} ${remaining === 1 ? 'code is' : 'codes are'} left.`,
    'If this was not you, change your password and make new recovery codes at once.',
  ])
}

export function signInLinkMail(link: string, ttlSeconds: number): RenderedMail {
  return compose(
    'Your sign-in link',
    ['Open this link to sign in:', `The link works once, for ${minutesText(ttlSeconds)}.`, IGNORE],
    { url: link, label: 'Sign in' },
  )
}
