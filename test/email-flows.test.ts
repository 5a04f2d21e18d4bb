// The email flows end to end over a real SMTP server (test/email-helper.ts):
// each mail arrives over SMTP, the test reads the link out of it and follows it,
// as the account page would. Verification, password reset, email change (at
// once, and after confirmation with REQUIRE_EMAIL_VERIFICATION), sign-in links;
// tokens work once, expire, and are refused for another purpose.

import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { type Inbox, mailEnv, type ReceivedMail, startInbox } from './email-helper.js'
import { buildTestApp, confirmPassword, cookiesOf, login, PASSWORD, signup, uniqueEmail } from './helper.js'

const NEW_PASSWORD = 'a brand new passphrase 42'

async function post(app: FastifyInstance, url: string, payload?: object, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload }), headers })
}

/** Sends what is queued, then the newest mail to `to` with a subject matching `subject`. */
async function mailTo(app: FastifyInstance, inbox: Inbox, to: string, subject: RegExp): Promise<ReceivedMail> {
  await app.mail.flush()
  return inbox.latest(to, subject)
}

t.test('sign-up mails a verification link; following it verifies the address, once', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox))
  const account = await signup(app)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).json().user.emailVerified, false)

  const mail = await mailTo(app, inbox, account.email, /confirm your email/i)
  t.ok(mail.link, 'the mail holds a link')
  const link = mail.link as NonNullable<ReceivedMail['link']>
  t.equal(link.action, 'verify-email')
  const url = new URL(link.url)
  t.equal(url.origin + url.pathname, 'https://auth.example.test/account/', 'the link opens PUBLIC_URL')
  t.equal(url.search, '', 'no query string: the token travels in the fragment only')
  t.match(link.token, /^[A-Za-z0-9_-]{43}$/, '256 random bits')
  t.match(mail.html, link.url.replace(/&/g, '&amp;'), 'the HTML part holds the same link')

  const confirmed = await post(app, '/auth/email-verification/confirm', { token: link.token })
  t.equal(confirmed.statusCode, 200)
  t.match(confirmed.json().user, { id: account.userId, email: account.email, emailVerified: true })
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).json().user.emailVerified, true)
  t.equal((await login(app, account.email)).userId, account.userId)

  const again = await post(app, '/auth/email-verification/confirm', { token: link.token })
  t.equal(again.statusCode, 400)
  t.equal(again.json().code, 'TOKEN_INVALID', 'a token works once')

  // Verified: asking again is accepted, and sends nothing.
  const before = inbox.mails.length
  const resend = await post(app, '/auth/email-verification', undefined, account.bearer)
  t.equal(resend.statusCode, 202)
  await app.mail.flush()
  t.equal(inbox.mails.length, before, 'no mail for a verified address')
})

t.test('POST /auth/email-verification sends another link; it needs an access token', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox))
  const account = await signup(app)
  const first = await mailTo(app, inbox, account.email, /confirm your email/i)

  const anonymous = await post(app, '/auth/email-verification')
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.json().code, 'AUTH_REQUIRED')

  const resend = await post(app, '/auth/email-verification', undefined, account.bearer)
  t.equal(resend.statusCode, 202)
  t.equal(resend.body, '')
  const second = await mailTo(app, inbox, account.email, /confirm your email/i)
  t.not(second.link?.token, first.link?.token, 'a new token')
  t.equal(inbox.to(account.email).length, 2)

  // Either link verifies; afterwards the other is dead.
  t.equal((await post(app, '/auth/email-verification/confirm', { token: first.link?.token })).statusCode, 200)
  const other = await post(app, '/auth/email-verification/confirm', { token: second.link?.token })
  t.equal(other.json().code, 'TOKEN_INVALID')
})

t.test('password reset: link, new password by the sign-up rules, every session revoked, a notice', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox))
  const account = await signup(app)
  const second = await login(app, account.email)

  const asked = await post(app, '/auth/password-reset', { email: ` ${account.email.toUpperCase()} ` })
  t.equal(asked.statusCode, 202)
  t.equal(asked.body, '')
  const older = await mailTo(app, inbox, account.email, /reset your password/i)
  t.equal((await post(app, '/auth/password-reset', { email: account.email })).statusCode, 202)
  const mail = await mailTo(app, inbox, account.email, /reset your password/i)
  t.equal(mail.link?.action, 'reset-password')
  t.not(mail.link?.token, older.link?.token)

  const weak = await post(app, '/auth/password-reset/confirm', { token: mail.link?.token, newPassword: 'short' })
  t.equal(weak.statusCode, 400)
  t.equal(weak.json().code, 'PASSWORD_TOO_WEAK', 'the sign-up rules')
  const common = await post(app, '/auth/password-reset/confirm', {
    token: mail.link?.token,
    newPassword: 'password123',
  })
  t.equal(common.json().code, 'PASSWORD_TOO_WEAK', 'not a common password')

  const reset = await post(app, '/auth/password-reset/confirm', { token: mail.link?.token, newPassword: NEW_PASSWORD })
  t.equal(reset.statusCode, 204, 'a refused password did not use the token up')

  for (const session of [account, second]) {
    const me = await app.inject({ url: '/users/me', headers: session.bearer })
    t.equal(me.statusCode, 401, 'every session is revoked at once')
    t.equal(me.json().code, 'SESSION_REVOKED')
  }
  const refresh = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    cookies: { refresh_token: account.cookies.refresh_token as string },
  })
  t.equal(refresh.statusCode, 401, 'and their refresh tokens')

  const oldPassword = await post(app, '/auth/login', { email: account.email, password: PASSWORD })
  t.equal(oldPassword.statusCode, 401)
  const fresh = await login(app, account.email, NEW_PASSWORD)
  t.equal(fresh.userId, account.userId)
  const me = await app.inject({ url: '/users/me', headers: fresh.bearer })
  t.equal(me.json().user.emailVerified, true, 'the reset link proved the address')

  const again = await post(app, '/auth/password-reset/confirm', {
    token: mail.link?.token,
    newPassword: 'another one 12345',
  })
  t.equal(again.json().code, 'TOKEN_INVALID', 'a token works once')
  const olderLink = await post(app, '/auth/password-reset/confirm', {
    token: older.link?.token,
    newPassword: 'another one 12345',
  })
  t.equal(olderLink.json().code, 'TOKEN_INVALID', 'the other reset links died with the reset')

  const notice = await mailTo(app, inbox, account.email, /password was changed/i)
  t.notOk(notice.link, 'the notice holds no link')
})

t.test('expired tokens and tokens of another purpose are refused', async (t) => {
  const inbox = await startInbox(t)
  const { app, clock } = await buildTestApp(t, mailEnv(inbox, { PASSWORD_RESET_TOKEN_DURATION: '30m' }))
  const account = await signup(app)
  const verification = await mailTo(app, inbox, account.email, /confirm your email/i)
  await post(app, '/auth/password-reset', { email: account.email })
  const reset = await mailTo(app, inbox, account.email, /reset your password/i)
  await post(app, '/auth/sign-in-link', { email: account.email })
  const signIn = await mailTo(app, inbox, account.email, /sign-in link/i)

  const cases: Array<[string, object]> = [
    ['/auth/password-reset/confirm', { token: verification.link?.token, newPassword: NEW_PASSWORD }],
    ['/auth/email-verification/confirm', { token: reset.link?.token }],
    ['/auth/email-change/confirm', { token: verification.link?.token }],
    ['/auth/sign-in-link/confirm', { token: reset.link?.token }],
    ['/auth/email-verification/confirm', { token: signIn.link?.token }],
    ['/auth/email-verification/confirm', { token: 'x'.repeat(43) }],
    ['/auth/email-verification/confirm', { token: 'not a token' }],
  ]
  for (const [url, payload] of cases) {
    const response = await post(app, url, payload)
    t.equal(response.statusCode, 400, `${url} refuses another purpose's token`)
    t.equal(response.json().code, 'TOKEN_INVALID')
  }

  clock.advance(30 * 60_000 + 1000)
  const expired = await post(app, '/auth/password-reset/confirm', {
    token: reset.link?.token,
    newPassword: NEW_PASSWORD,
  })
  t.equal(expired.statusCode, 400)
  t.equal(expired.json().code, 'TOKEN_EXPIRED', 'PASSWORD_RESET_TOKEN_DURATION')
  const expiredSignIn = await post(app, '/auth/sign-in-link/confirm', { token: signIn.link?.token })
  t.equal(expiredSignIn.json().code, 'TOKEN_EXPIRED', 'SIGN_IN_LINK_TOKEN_DURATION is 15 minutes')
  const stillGood = await post(app, '/auth/email-verification/confirm', { token: verification.link?.token })
  t.equal(stillGood.statusCode, 200, 'a verification link lasts 24 hours')
  t.ok((await login(app, account.email)).userId, 'the password did not change')
})

t.test('email change without REQUIRE_EMAIL_VERIFICATION: at once, unverified, both addresses told', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox))
  const account = await signup(app)
  const verification = await mailTo(app, inbox, account.email, /confirm your email/i)
  await post(app, '/auth/email-verification/confirm', { token: verification.link?.token })
  const headers = { ...account.bearer, 'x-password-confirmation': await confirmPassword(app, account) }
  const newEmail = uniqueEmail('moved')
  const changed = await app.inject({ method: 'PATCH', url: '/users/me', headers, payload: { email: newEmail } })
  t.equal(changed.statusCode, 200)
  t.match(changed.json().user, { email: newEmail, emailVerified: false })

  const notice = await mailTo(app, inbox, account.email, /email address was changed/i)
  t.match(notice.text, newEmail, 'the old address is told where the account went')
  const mail = await mailTo(app, inbox, newEmail, /confirm your email/i)
  t.equal((await post(app, '/auth/email-verification/confirm', { token: mail.link?.token })).statusCode, 200)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).json().user.emailVerified, true)
})

t.test('email change with REQUIRE_EMAIL_VERIFICATION waits for the link to the new address', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox, { REQUIRE_EMAIL_VERIFICATION: 'true' }))
  const account = await signup(app)
  await post(app, '/auth/email-verification/confirm', {
    token: (await mailTo(app, inbox, account.email, /confirm your email/i)).link?.token,
  })
  const headers = { ...account.bearer, 'x-password-confirmation': await confirmPassword(app, account) }
  const newEmail = uniqueEmail('moving')

  const asked = await app.inject({
    method: 'PATCH',
    url: '/users/me',
    headers,
    payload: { email: newEmail, displayName: 'Moved' },
  })
  t.equal(asked.statusCode, 200)
  t.match(asked.json().user, { email: account.email, displayName: 'Moved', emailVerified: true }, 'not switched yet')
  const notice = await mailTo(app, inbox, account.email, /about to change/i)
  t.match(notice.text, newEmail)
  const mail = await mailTo(app, inbox, newEmail, /confirm your new email/i)
  t.equal(mail.link?.action, 'confirm-email-change')

  const taken = await signup(app)
  const takenAsk = await app.inject({ method: 'PATCH', url: '/users/me', headers, payload: { email: taken.email } })
  t.equal(takenAsk.statusCode, 409)
  t.equal(takenAsk.json().code, 'EMAIL_TAKEN', 'a taken address is refused when asked')

  const confirmed = await post(app, '/auth/email-change/confirm', { token: mail.link?.token })
  t.equal(confirmed.statusCode, 200)
  t.match(confirmed.json().user, { id: account.userId, email: newEmail, emailVerified: true })
  t.equal((await login(app, newEmail)).userId, account.userId)
  t.equal((await post(app, '/auth/login', { email: account.email, password: PASSWORD })).statusCode, 401)
  const again = await post(app, '/auth/email-change/confirm', { token: mail.link?.token })
  t.equal(again.json().code, 'TOKEN_INVALID', 'once')
})

t.test('an address taken between the request and the confirmation is 409 EMAIL_TAKEN', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox, { REQUIRE_EMAIL_VERIFICATION: 'true' }))
  const account = await signup(app)
  const headers = { ...account.bearer, 'x-password-confirmation': await confirmPassword(app, account) }
  const newEmail = uniqueEmail('contested')
  await app.inject({ method: 'PATCH', url: '/users/me', headers, payload: { email: newEmail } })
  const mail = await mailTo(app, inbox, newEmail, /confirm your new email/i)
  await signup(app, { email: newEmail })

  const confirmed = await post(app, '/auth/email-change/confirm', { token: mail.link?.token })
  t.equal(confirmed.statusCode, 409)
  t.equal(confirmed.json().code, 'EMAIL_TAKEN')
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(me.json().user.email, account.email, 'the account keeps its address')
})

t.test('REQUIRE_EMAIL_VERIFICATION: login and refresh answer 403 EMAIL_NOT_VERIFIED until verified', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox, { REQUIRE_EMAIL_VERIFICATION: 'true' }))
  const account = await signup(app)

  const loginRefused = await post(app, '/auth/login', { email: account.email, password: PASSWORD })
  t.equal(loginRefused.statusCode, 403)
  t.equal(loginRefused.json().code, 'EMAIL_NOT_VERIFIED')
  t.same(cookiesOf(loginRefused), {}, 'no cookies')
  const wrongPassword = await post(app, '/auth/login', { email: account.email, password: 'wrong password 123' })
  t.equal(wrongPassword.json().code, 'INVALID_CREDENTIALS', 'a guesser learns nothing about verification')

  const refresh = () =>
    app.inject({
      method: 'POST',
      url: '/auth/refresh',
      cookies: { refresh_token: account.cookies.refresh_token as string },
    })
  const refreshRefused = await refresh()
  t.equal(refreshRefused.statusCode, 403)
  t.equal(refreshRefused.json().code, 'EMAIL_NOT_VERIFIED')

  // The sign-up's access token still asks for the mail again.
  t.equal((await post(app, '/auth/email-verification', undefined, account.bearer)).statusCode, 202)
  const mail = await mailTo(app, inbox, account.email, /confirm your email/i)
  t.equal((await post(app, '/auth/email-verification/confirm', { token: mail.link?.token })).statusCode, 200)

  t.equal((await refresh()).statusCode, 200, 'the same refresh cookie works once verified')
  t.equal((await post(app, '/auth/login', { email: account.email, password: PASSWORD })).statusCode, 200)
})

t.test('a sign-in link signs in exactly like a login, and proves the address', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox, { REQUIRE_EMAIL_VERIFICATION: 'true' }))
  const account = await signup(app)
  const asked = await post(app, '/auth/sign-in-link', { email: account.email })
  t.equal(asked.statusCode, 202)
  const mail = await mailTo(app, inbox, account.email, /sign-in link/i)
  t.equal(mail.link?.action, 'sign-in')

  const signedIn = await post(app, '/auth/sign-in-link/confirm', { token: mail.link?.token })
  t.equal(signedIn.statusCode, 200)
  const body = signedIn.json()
  t.same(Object.keys(body).sort(), ['accessToken', 'accessTokenExpiresAt', 'user'], 'the body of a login')
  t.match(body.user, { id: account.userId, emailVerified: true })
  const cookies = cookiesOf(signedIn)
  t.ok(cookies.access_token && cookies.refresh_token && cookies.device_token, 'the cookies of a login')
  const setCookie = signedIn.cookies.find((cookie) => cookie.name === 'refresh_token')
  t.match(setCookie, { httpOnly: true, path: '/auth', sameSite: 'Strict' })
  const me = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${body.accessToken}` } })
  t.equal(me.statusCode, 200)
  t.equal((await post(app, '/auth/login', { email: account.email, password: PASSWORD })).statusCode, 200)

  const again = await post(app, '/auth/sign-in-link/confirm', { token: mail.link?.token })
  t.equal(again.json().code, 'TOKEN_INVALID', 'once')

  // Login CSRF: another site cannot sign a browser in with its own link.
  await post(app, '/auth/sign-in-link', { email: account.email })
  const next = await mailTo(app, inbox, account.email, /sign-in link/i)
  const crossSite = await post(
    app,
    '/auth/sign-in-link/confirm',
    { token: next.link?.token },
    { origin: 'https://evil.example' },
  )
  t.equal(crossSite.statusCode, 403)
  t.equal(crossSite.json().code, 'CSRF_REJECTED')
})

t.test('SIGN_IN_LINKS=false: the sign-in link routes do not exist', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox, { SIGN_IN_LINKS: 'false' }))
  t.equal((await post(app, '/auth/sign-in-link', { email: uniqueEmail() })).statusCode, 404)
  t.equal((await post(app, '/auth/sign-in-link/confirm', { token: 'x'.repeat(43) })).statusCode, 404)
})

t.test('mail requests are rate-limited per address, known or not, and per IP', async (t) => {
  const inbox = await startInbox(t)
  const { app } = await buildTestApp(t, mailEnv(inbox, { MAIL_RATE_LIMIT_MAX: '2', AUTH_RATE_LIMIT_MAX: '6' }))
  const account = await signup(app)
  const unknown = uniqueEmail('nobody')
  for (const email of [account.email, unknown]) {
    const answers = []
    for (let i = 0; i < 3; i++) answers.push(await post(app, '/auth/password-reset', { email }))
    t.same(
      answers.map((answer) => answer.statusCode),
      [202, 202, 429],
      'MAIL_RATE_LIMIT_MAX an hour per address',
    )
    t.equal(answers[2]?.json().code, 'RATE_LIMITED')
    t.ok(Number(answers[2]?.headers['retry-after']) > 0, 'Retry-After')
  }
  // Six requests from this IP so far (four accepted or not, the limit counts each): the seventh is refused.
  const fromIp = await post(app, '/auth/sign-in-link', { email: uniqueEmail('fresh') })
  t.equal(fromIp.statusCode, 429, 'AUTH_RATE_LIMIT_MAX per 15 minutes per IP')
  const elsewhere = await post(app, '/auth/sign-in-link', { email: uniqueEmail('fresh') }, {})
  t.equal(elsewhere.statusCode, 429)
})
