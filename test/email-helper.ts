// A real SMTP server for the email tests: smtp-server (from the nodemailer
// project) on loopback, parsing every message it receives with mailparser, so a
// test reads the link out of a mail as a person would and follows it. It can be
// stopped and started again on the same port (SMTP down, then back), or made to
// refuse every recipient (a permanent 5xx).
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type ParsedMail, simpleParser } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import latchkey, { serverOptions } from '../src/app.js'
import { type Config, loadConfig } from '../src/config.js'
import { TEST_ENV, TestClock, tempDir, testDatabaseEnv } from './helper.js'

export interface ReceivedMail {
  to: string
  subject: string
  text: string
  html: string
  /** The link in the mail, if any: its action and token (from the URL fragment). */
  link?: { url: string; action: string; token: string }
}

export interface Inbox {
  port: number
  url: string
  mails: ReceivedMail[]
  /** Mails received for `to`, oldest first. */
  to(address: string): ReceivedMail[]
  /** The newest mail to `to` whose subject matches, or fails. */
  latest(address: string, subject?: RegExp): ReceivedMail
  stop(): Promise<void>
  start(): Promise<void>
  /** Answer 550 to every recipient from now on. */
  refuseAll: boolean
}

interface Teardown {
  teardown(fn: () => unknown): void
}

const LINK = /(https?:\/\/[^\s"<>]+#action=([a-z-]+)&token=([A-Za-z0-9_-]+))/

function toReceived(parsed: ParsedMail): ReceivedMail {
  const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to
  const text = parsed.text ?? ''
  const match = LINK.exec(text)
  return {
    to: to?.value[0]?.address ?? '',
    subject: parsed.subject ?? '',
    text,
    html: typeof parsed.html === 'string' ? parsed.html : '',
    ...(match ? { link: { url: match[1] as string, action: match[2] as string, token: match[3] as string } } : {}),
  }
}

export async function startInbox(t: Teardown): Promise<Inbox> {
  let server: SMTPServer | undefined
  const inbox: Inbox = {
    port: 0,
    url: '',
    mails: [],
    refuseAll: false,
    to: (address) => inbox.mails.filter((mail) => mail.to === address),
    latest(address, subject) {
      const mails = inbox.to(address).filter((mail) => !subject || subject.test(mail.subject))
      const mail = mails[mails.length - 1]
      if (!mail) throw new Error(`no mail to ${address}${subject ? ` matching ${subject}` : ''}`)
      return mail
    },
    async start() {
      server = new SMTPServer({
        authOptional: true,
        disabledCommands: ['STARTTLS'],
        logger: false,
        onRcptTo(_address, _session, callback) {
          if (!inbox.refuseAll) return callback()
          const error = new Error('mailbox unavailable') as Error & { responseCode: number }
          error.responseCode = 550
          callback(error)
        },
        onData(stream, _session, callback) {
          simpleParser(stream)
            .then((parsed) => {
              inbox.mails.push(toReceived(parsed))
              callback()
            })
            .catch((error: Error) => callback(error))
        },
      })
      const listening = server
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject)
        listening.listen(inbox.port, '127.0.0.1', () => resolve())
      })
      inbox.port = (listening.server.address() as AddressInfo).port
      inbox.url = `smtp://127.0.0.1:${inbox.port}`
    },
    async stop() {
      const stopping = server
      server = undefined
      if (stopping) await new Promise<void>((resolve) => stopping.close(() => resolve()))
    },
  }
  await inbox.start()
  t.teardown(() => inbox.stop())
  return inbox
}

/** Test settings for mail: this inbox, a known PUBLIC_URL, and mail limits out of the way. */
export const mailEnv = (inbox: Inbox, extra: Record<string, string> = {}): Record<string, string> => ({
  SMTP_URL: inbox.url,
  MAIL_FROM: 'latchkey <noreply@auth.example.test>',
  PUBLIC_URL: 'https://auth.example.test/account/',
  MAIL_RATE_LIMIT_MAX: '1000',
  ...extra,
})

export interface LoggedApp {
  app: FastifyInstance
  config: Config
  clock: TestClock
  /** Every log line as written. */
  lines: string[]
  dir: string
}

/**
 * The app with a TestClock and its log lines kept. Pass the `dir` and
 * `database` of an earlier app to start again on its data (a restart).
 */
export async function startLoggedApp(
  t: Teardown,
  env: Record<string, string> = {},
  reuse: { dir?: string; database?: Record<string, string> } = {},
): Promise<LoggedApp & { database: Record<string, string> }> {
  const dir = reuse.dir ?? tempDir(t)
  const database = reuse.database ?? (await testDatabaseEnv(t))
  const config = loadConfig({ env: { ...TEST_ENV, DATA_DIR: dir, ...database, LOG_LEVEL: 'info', ...env }, cwd: dir })
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  const options = serverOptions(config)
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  const clock = new TestClock()
  await app.register(fp(latchkey), { config, clock })
  await app.ready()
  t.teardown(() => app.close())
  return { app, config, clock, lines, dir, database }
}
