// What the email flows must never give away: whether an address has an account
// (the same status, body, headers, work and time for known and unknown
// addresses), a token, link or mail body in any log line even at trace level,
// or a token in clear in the database.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import { countMailQueue } from '../src/mail/queue.js'
import { type Inbox, mailEnv, startInbox, startLoggedApp } from './email-helper.js'
import { buildTestApp, confirmPassword, onPostgres, signup, uniqueEmail } from './helper.js'

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

for (const route of ['/auth/password-reset', '/auth/sign-in-link']) {
  t.test(
    `${route}: known and unknown addresses get the same answer, after the same work, in the same time`,
    async (t) => {
      const inbox = await startInbox(t)
      const { app } = await buildTestApp(t, mailEnv(inbox))
      const account = await signup(app)
      await app.mail.flush()
      // No background sending while requests are timed and their work counted: the jobs wait in the queue.
      await app.mail.stop()

      const tokenCount = async () =>
        Number(
          (
            await app.db
              .selectFrom('one_time_tokens')
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirst()
          )?.n,
        )
      const ask = async (email: string) => {
        const queued = (await countMailQueue(app.db)).queued
        const tokens = await tokenCount()
        const start = process.hrtime.bigint()
        const response = await app.inject({ method: 'POST', url: route, payload: { email } })
        const ms = Number(process.hrtime.bigint() - start) / 1e6
        // The request's whole work is one queued job: no account lookup, no token, no mail before the answer.
        const work = { queued: (await countMailQueue(app.db)).queued - queued, tokens: (await tokenCount()) - tokens }
        // Sent outside the timed part, so one request's mail never slows the next.
        await app.mail.flush()
        return { response, ms, work }
      }
      const known: number[] = []
      const unknown: number[] = []
      for (let round = 0; round < 25; round++) {
        const pair = round % 2 ? [account.email, uniqueEmail('ghost')] : [uniqueEmail('ghost'), account.email]
        for (const email of pair) {
          const { response, ms, work } = await ask(email)
          t.equal(response.statusCode, 202)
          t.equal(response.body, '', 'no body')
          t.same(work, { queued: 1, tokens: 0 }, 'one job queued and nothing else, whoever asks')
          if (email === account.email) known.push(ms)
          else unknown.push(ms)
        }
      }
      const a = await app.inject({ method: 'POST', url: route, payload: { email: account.email } })
      const b = await app.inject({ method: 'POST', url: route, payload: { email: uniqueEmail('ghost') } })
      t.same(Object.keys(a.headers).sort(), Object.keys(b.headers).sort(), 'the same headers')
      const ratio = median(unknown) / median(known)
      t.ok(ratio > 0.5 && ratio < 2, `unknown/known median time ratio ${ratio.toFixed(2)} is near 1`)
      await app.mail.flush()
      t.equal(inbox.mails.filter((mail) => mail.to !== account.email).length, 0, 'unknown addresses get no mail')
      const subject = route === '/auth/password-reset' ? /reset your password/i : /sign-in link/i
      t.equal(
        inbox.to(account.email).filter((mail) => subject.test(mail.subject)).length,
        26,
        'the account got each one',
      )
    },
  )
}

/** Runs every flow once, over SMTP; answers every token and link mailed. */
async function everyFlow(app: FastifyInstance, inbox: Inbox): Promise<{ tokens: string[]; links: string[] }> {
  const post = (url: string, payload?: object, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload }), headers })
  const latest = async (to: string, subject: RegExp) => {
    await app.mail.flush()
    return inbox.latest(to, subject)
  }
  const account = await signup(app)
  const verification = await latest(account.email, /confirm your email/i)
  await post('/auth/email-verification', undefined, account.bearer)
  const second = await latest(account.email, /confirm your email/i)
  t.equal((await post('/auth/email-verification/confirm', { token: verification.link?.token })).statusCode, 200)

  await post('/auth/password-reset', { email: account.email })
  const reset = await latest(account.email, /reset your password/i)
  const newPassword = 'a new passphrase for logs'
  t.equal((await post('/auth/password-reset/confirm', { token: reset.link?.token, newPassword })).statusCode, 204)

  await post('/auth/sign-in-link', { email: account.email })
  const signIn = await latest(account.email, /sign-in link/i)
  const signedIn = await post('/auth/sign-in-link/confirm', { token: signIn.link?.token })
  t.equal(signedIn.statusCode, 200)
  const bearer = { authorization: `Bearer ${signedIn.json().accessToken}` }

  const confirmation = await confirmPassword(app, { ...account, password: newPassword, bearer })
  const newEmail = uniqueEmail('logs-moved')
  await app.inject({
    method: 'PATCH',
    url: '/users/me',
    headers: { ...bearer, 'x-password-confirmation': confirmation },
    payload: { email: newEmail },
  })
  const change = await latest(newEmail, /confirm/i)
  await app.mail.flush()
  const mails = [verification, second, reset, signIn, change]
  return {
    tokens: mails.map((mail) => mail.link?.token as string),
    links: mails.map((mail) => mail.link?.url as string),
  }
}

t.test('no token, link or mail body in any log line, at trace level', async (t) => {
  const inbox = await startInbox(t)
  const { app, lines } = await startLoggedApp(
    t,
    mailEnv(inbox, { LOG_LEVEL: 'trace', REQUIRE_EMAIL_VERIFICATION: 'true' }),
  )
  const { tokens, links } = await everyFlow(app, inbox)
  t.equal(tokens.filter(Boolean).length, 5, 'five links were mailed')
  t.ok(lines.length > 10, 'the app logged')
  const log = lines.join('\n')
  for (const token of tokens) t.notOk(log.includes(token), 'no token')
  for (const link of links) t.notOk(log.includes(link), 'no link')
  for (const phrase of ['Open this link', 'The link works once', '#action=', 'token=']) {
    t.notOk(log.includes(phrase), `no mail body ("${phrase}")`)
  }
  for (const mail of inbox.mails) t.notOk(log.includes(mail.to), 'no recipient address')
})

t.test('the database holds no token in clear', async (t) => {
  const inbox = await startInbox(t)
  const { app, config } = await buildTestApp(t, mailEnv(inbox, { REQUIRE_EMAIL_VERIFICATION: 'true' }))
  // Issued and not used: these stay in the database as hashes.
  const pending = await signup(app)
  await app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: pending.email } })
  await app.inject({ method: 'POST', url: '/auth/sign-in-link', payload: { email: pending.email } })
  await app.mail.flush()
  const pendingTokens = inbox.to(pending.email).map((mail) => mail.link?.token as string)
  const { tokens } = await everyFlow(app, inbox)
  const all = [...pendingTokens, ...tokens]
  t.equal(all.length, 8)
  const stored = await app.db.selectFrom('one_time_tokens').selectAll().execute()
  t.ok(stored.length >= 3, 'unused tokens are stored')

  let dump = ''
  for (const table of await app.db.introspection.getTables()) {
    const { rows } = await sql`select * from ${sql.table(table.name)}`.execute(app.db)
    dump += JSON.stringify(rows, (_key, value) =>
      value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : value,
    )
  }
  if (!onPostgres && config.database.kind === 'sqlite') {
    // The file and its WAL byte by byte, freed pages included.
    for (const suffix of ['', '-wal']) dump += readFileSync(`${config.database.file}${suffix}`).toString('latin1')
  }
  for (const token of all) t.notOk(dump.includes(token), 'no token in clear')
  t.notOk(dump.includes('#action='), 'no link')
  t.ok(path.isAbsolute(config.dataDir))
})
