// How a written mail leaves: over SMTP (nodemailer, SMTP_URL) or, with no SMTP
// server configured (the zero-config default), as an .eml file in
// <DATA_DIR>/outbox/, so a developer can follow a reset link on a laptop. Outbox
// files hold live links: they are made 0600 in a 0700 directory, whatever the
// umask, and the log says only that one was written, its purpose and the
// recipient's domain, never the address, the link or the body.
import { randomBytes } from 'node:crypto'
import { chmodSync, closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs'
import path from 'node:path'
import nodemailer, { type Transporter } from 'nodemailer'

export interface MailMessage {
  to: string
  subject: string
  text: string
  html: string
  /** What the mail is for (a queue purpose); logged, never the content. */
  purpose: string
}

export interface MailLogger {
  info(object: object, message: string): void
  warn(object: object, message: string): void
  error(object: object, message: string): void
}

export interface MailTransport {
  readonly kind: 'smtp' | 'outbox'
  send(message: MailMessage): Promise<void>
  /** Ends open connections; a send in progress fails (and is retried later). */
  close(): void
}

export interface TransportOptions {
  smtpUrl: string | undefined
  from: string
  /** Where .eml files go without an SMTP server. */
  outboxDir: string
  log: MailLogger
  /** SMTP timeouts in milliseconds: a slow server fails a send (retried later) rather than holding it. */
  timeoutMs?: number
}

/** The part of an address after the last `@`, the only part of it that is logged. */
export const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase()

const DEFAULT_TIMEOUT_MS = 20_000

/**
 * A text or HTML part as 7bit when it is ASCII with lines of at most 998
 * characters (RFC 5322), as every mail here is: quoted-printable would break
 * a link over lines (`=` soft breaks, `=3D`), so that a developer could not
 * copy or grep it out of an outbox file. Anything else nodemailer encodes.
 */
function part(content: string, type: 'plain' | 'html'): string | { raw: string } {
  const lines = content.split('\n')
  if (!/^[\x20-\x7e\n]*$/.test(content) || lines.some((line) => line.length > 998)) return content
  return {
    raw: `Content-Type: text/${type}; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${lines.join('\r\n')}`,
  }
}

const parts = (message: MailMessage) => ({ text: part(message.text, 'plain'), html: part(message.html, 'html') })

export function createMailTransport(options: TransportOptions): MailTransport {
  return options.smtpUrl === undefined ? outboxTransport(options) : smtpTransport(options, options.smtpUrl)
}

function smtpTransport(options: TransportOptions, url: string): MailTransport {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  let transporter: Transporter | undefined
  const open = (): Transporter => {
    transporter ??= nodemailer.createTransport(
      {
        url,
        connectionTimeout: timeout,
        greetingTimeout: timeout,
        socketTimeout: timeout,
        // nodemailer's own logger would print addresses and bodies.
        logger: false,
        debug: false,
      },
      { from: options.from },
    )
    return transporter
  }
  return {
    kind: 'smtp',
    async send(message) {
      await open().sendMail({
        to: message.to,
        subject: message.subject,
        ...parts(message),
      })
    },
    close() {
      transporter?.close()
      transporter = undefined
    },
  }
}

function outboxTransport(options: TransportOptions): MailTransport {
  // Renders the message exactly as it would go over SMTP, headers and all.
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
  return {
    kind: 'outbox',
    async send(message) {
      const info = await composer.sendMail({
        from: options.from,
        to: message.to,
        subject: message.subject,
        ...parts(message),
      })
      const raw = info.message as Buffer
      mkdirSync(options.outboxDir, { recursive: true, mode: 0o700 })
      chmodSync(options.outboxDir, 0o700)
      const stamp = new Date().toISOString().replace(/[:.]/g, '-')
      const file = path.join(options.outboxDir, `${stamp}-${message.purpose}-${randomBytes(4).toString('hex')}.eml`)
      const fd = openSync(file, 'wx', 0o600)
      try {
        fchmodSync(fd, 0o600)
        writeSync(fd, raw)
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      options.log.info(
        { purpose: message.purpose, recipientDomain: domainOf(message.to), file },
        'mail written to the outbox (no SMTP_URL)',
      )
    },
    close() {},
  }
}
