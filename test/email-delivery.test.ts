// The mail queue under faults, over a real SMTP server: SMTP down when a mail is
// sent, then back (it arrives, once); latchkey restarted with mails queued (they
// go out); a sender that died holding a claim (its mails come back after the
// lease); a permanent refusal (given up, logged, counted); several senders on
// one queue (each mail claimed once); and the outbox of a server without SMTP.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { simpleParser } from 'mailparser'
import t from 'tap'
import { claimDueMails } from '../src/mail/queue.js'
import { type Inbox, mailEnv, startInbox, startLoggedApp } from './email-helper.js'
import { onPostgres, signup, TEST_SECRETS, uniqueEmail } from './helper.js'

const parse = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>)
const count = (inbox: Inbox, to: string, subject: RegExp) =>
  inbox.to(to).filter((mail) => subject.test(mail.subject)).length

t.test('SMTP down when the mail is sent, then back: it arrives, once', async (t) => {
  const inbox = await startInbox(t)
  const { app, clock, lines } = await startLoggedApp(t, mailEnv(inbox))
  await inbox.stop()

  const account = await signup(app)
  const asked = await app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: account.email } })
  t.equal(asked.statusCode, 202, 'the request does not wait for SMTP')
  await app.mail.flush()
  const stats = await app.mail.stats()
  t.match(stats, { transport: 'smtp', queued: 2, failed: 0, sent: 0, failedAttempts: 2 })
  t.match(stats.lastFailure, { error: /^[A-Z]+/ })
  const warnings = parse(lines).filter((line) => line.msg === 'mail not sent; will retry')
  t.equal(warnings.length, 2, 'each failure is logged')
  t.match(warnings[0], { level: 40, recipientDomain: 'example.com', attempts: 1, retryInSeconds: Number })
  t.notMatch(lines.join('\n'), account.email, 'never the address')

  await inbox.start()
  await app.mail.flush()
  t.equal(inbox.mails.length, 0, 'not before the backoff')
  clock.advance(60_000)
  await app.mail.flush()
  await app.mail.flush()
  t.equal(count(inbox, account.email, /confirm your email/i), 1, 'the verification mail arrived once')
  t.equal(count(inbox, account.email, /reset your password/i), 1, 'the reset mail arrived once')
  const reset = inbox.latest(account.email, /reset/i)
  const confirmed = await app.inject({
    method: 'POST',
    url: '/auth/password-reset/confirm',
    payload: { token: reset.link?.token, newPassword: 'a new passphrase 2026' },
  })
  t.equal(confirmed.statusCode, 204, 'the late link works')

  clock.advance(60 * 60_000)
  await app.mail.flush()
  t.equal(inbox.mails.length, 3, 'and nothing more than the password-changed notice, however long')
  t.match(await app.mail.stats(), { queued: 0, sent: 3 })
})

t.test('latchkey restarted with mails queued: they still go out', async (t) => {
  const inbox = await startInbox(t)
  const env = mailEnv(inbox)
  const first = await startLoggedApp(t, env)
  await inbox.stop()
  const account = await signup(first.app)
  const unknown = uniqueEmail('ghost')
  for (const email of [account.email, unknown]) {
    await first.app.inject({ method: 'POST', url: '/auth/sign-in-link', payload: { email } })
  }
  await first.app.mail.flush()
  // The unknown address's job ended at its first attempt, without a word to SMTP.
  t.match(await first.app.mail.stats(), { queued: 2 }, 'queued when the server stops')
  await first.app.close()

  await inbox.start()
  const second = await startLoggedApp(t, mailEnv(inbox), { dir: first.dir, database: first.database })
  second.clock.advance(2 * 60_000)
  await second.app.mail.flush()
  t.equal(count(inbox, account.email, /confirm your email/i), 1)
  t.equal(count(inbox, account.email, /sign-in link/i), 1)
  t.equal(inbox.to(unknown).length, 0, 'an address without an account gets nothing')
  t.match(await second.app.mail.stats(), { queued: 0 })

  const link = inbox.latest(account.email, /sign-in link/i).link
  const signedIn = await second.app.inject({
    method: 'POST',
    url: '/auth/sign-in-link/confirm',
    payload: { token: link?.token },
  })
  t.equal(signedIn.statusCode, 200, 'the link from the restarted server signs in')
})

t.test('a link mail delayed past its link lifetime is not sent', async (t) => {
  const inbox = await startInbox(t)
  const { app, clock } = await startLoggedApp(t, mailEnv(inbox, { SIGN_IN_LINK_TOKEN_DURATION: '15m' }))
  await inbox.stop()
  const account = await signup(app)
  await app.inject({ method: 'POST', url: '/auth/sign-in-link', payload: { email: account.email } })
  await app.mail.flush()
  await inbox.start()
  clock.advance(16 * 60_000)
  await app.mail.flush()
  t.equal(count(inbox, account.email, /sign-in link/i), 0, 'a sign-in link that would arrive dead is dropped')
  t.equal(count(inbox, account.email, /confirm your email/i), 1, 'the verification mail (24 hours) still goes')
  t.match(await app.mail.stats(), { queued: 0 })
})

t.test('a sender that dies holding a claim: its mails go out after the lease', async (t) => {
  const inbox = await startInbox(t)
  const { app, clock } = await startLoggedApp(t, mailEnv(inbox))
  await inbox.stop()
  const account = await signup(app, { email: uniqueEmail('claimed') })
  await app.mail.flush()
  clock.advance(60_000)
  // Another sender claims the job, due again, and never finishes it.
  const claimed = await claimDueMails(app.db, clock.now(), 10, 5 * 60_000)
  t.equal(claimed.length, 1)
  await inbox.start()
  await app.mail.flush()
  t.equal(inbox.mails.length, 0, 'a claimed job is left alone')
  clock.advance(5 * 60_000 + 1)
  await app.mail.flush()
  t.equal(count(inbox, account.email, /confirm your email/i), 1, 'sent once the claim ran out')
})

t.test('a permanent refusal (5xx) gives the mail up at once: logged and counted', async (t) => {
  const inbox = await startInbox(t)
  const { app, clock, lines } = await startLoggedApp(t, mailEnv(inbox))
  inbox.refuseAll = true
  const account = await signup(app)
  await app.mail.flush()
  const stats = await app.mail.stats()
  t.match(stats, { queued: 0, failed: 1, givenUp: 1, sent: 0 })
  t.match(stats.lastFailure, { error: /550/ })
  const errors = parse(lines).filter((line) => line.msg === 'mail given up')
  t.equal(errors.length, 1)
  t.match(errors[0], { level: 50, purpose: 'email-verification', recipientDomain: 'example.com', error: /550/ })
  t.notMatch(lines.join('\n'), account.email)
  inbox.refuseAll = false
  clock.advance(24 * 60 * 60_000)
  await app.mail.flush()
  t.equal(inbox.mails.length, 0, 'not retried')
})

t.test('several senders on one queue: each mail is claimed, and sent, once', async (t) => {
  const inbox = await startInbox(t)
  const first = await startLoggedApp(t, mailEnv(inbox))
  // On PostgreSQL a second instance on the same schema; on SQLite (one server per file) the same app.
  const second = onPostgres
    ? await startLoggedApp(t, mailEnv(inbox), { database: { ...first.database, ...TEST_SECRETS } })
    : first
  await inbox.stop()
  const accounts = []
  for (let i = 0; i < 6; i++) accounts.push(await signup(i % 2 ? second.app : first.app))
  for (const account of accounts) {
    await first.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: account.email } })
  }
  await first.app.mail.flush()
  t.match(await first.app.mail.stats(), { queued: 12 })

  // Concurrent claims never share a job.
  const later = first.clock.now() + 60_000
  const claims = await Promise.all([1, 2, 3, 4].map(() => claimDueMails(first.app.db, later, 4, 1000)))
  const ids = claims.flat().map((job) => job.id)
  t.equal(ids.length, 12, 'every due job claimed')
  t.equal(new Set(ids).size, 12, 'none twice')

  await inbox.start()
  // Within the reset links' 30 minutes.
  for (const app of new Set([first, second])) app.clock.advance(2 * 60_000)
  await Promise.all([first.app.mail.flush(), second.app.mail.flush(), first.app.mail.flush()])
  await Promise.all([first.app.mail.flush(), second.app.mail.flush()])
  for (const account of accounts) {
    t.equal(count(inbox, account.email, /confirm your email/i), 1, 'verification once')
    t.equal(count(inbox, account.email, /reset your password/i), 1, 'reset once')
  }
  t.equal(inbox.mails.length, 12)
})

t.test('without SMTP_URL, mails are .eml files in DATA_DIR/outbox, private, and the log names no one', async (t) => {
  const previous = process.umask(0)
  t.teardown(() => process.umask(previous))
  const { app, config, lines } = await startLoggedApp(t, { LOG_LEVEL: 'trace' })
  const account = await signup(app)
  await app.mail.flush()

  const outbox = path.join(config.dataDir, 'outbox')
  t.equal((statSync(outbox).mode & 0o777).toString(8), '700', 'the outbox is 0700 whatever the umask')
  const files = readdirSync(outbox)
  t.equal(files.length, 1)
  const file = path.join(outbox, files[0] as string)
  t.equal((statSync(file).mode & 0o777).toString(8), '600', 'each mail is 0600')
  t.match(files[0], /^[\dT-]+Z-email-verification-[0-9a-f]{8}\.eml$/, 'the name holds no address or token')

  const raw = readFileSync(file, 'utf8')
  const parsed = await simpleParser(raw)
  t.equal(parsed.subject, 'Confirm your email address')
  t.same(
    parsed.from?.value,
    [{ name: 'latchkey', address: 'noreply@localhost' }],
    'MAIL_FROM defaults to the PUBLIC_URL host',
  )
  const token = /#action=verify-email&token=([A-Za-z0-9_-]{43})/.exec(parsed.text ?? '')?.[1]
  t.ok(token, 'the link to PUBLIC_URL (http://localhost:PORT/ by default)')
  t.match(parsed.text, `http://localhost:${config.port}/#action=verify-email&token=`)
  t.ok(
    raw.includes(`http://localhost:${config.port}/#action=verify-email&token=${token}\n`),
    'the link is on one line of the file (7bit, no quoted-printable breaks): grep finds it',
  )

  const written = parse(lines).filter((line) => line.msg === 'mail written to the outbox (no SMTP_URL)')
  t.equal(written.length, 1)
  t.match(written[0], { purpose: 'email-verification', recipientDomain: 'example.com', file })
  const log = lines.join('\n')
  t.notMatch(log, account.email, 'never the address')
  t.notMatch(log, token as string, 'never the token')

  const confirmed = await app.inject({ method: 'POST', url: '/auth/email-verification/confirm', payload: { token } })
  t.equal(confirmed.statusCode, 200, 'a developer can follow the link from the file')
})
