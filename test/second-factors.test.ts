// TOTP, recovery codes and the login's second step, end to end through the
// app. Codes are computed here by RFC 6238 itself (node:crypto's HMAC, checked
// against the RFC's own test vectors), not by the library latchkey uses; time
// moves by the app's TestClock.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { type Inbox, mailEnv, startInbox } from './email-helper.js'
import {
  type Account,
  buildTestApp,
  confirmPassword,
  cookiesOf,
  PASSWORD,
  signup,
  sleep,
  type TestClock,
} from './helper.js'
import { base32Decode, totp } from './totp.js'

const STEP = 30_000

t.test('the test TOTP is RFC 6238 (its SHA-1 test vectors)', async (t) => {
  const key = Buffer.from('12345678901234567890', 'ascii')
  t.equal(totp(key, 59_000, 8), '94287082')
  t.equal(totp(key, 1_111_111_109_000, 8), '07081804')
  t.equal(totp(key, 1_234_567_890_000, 8), '89005924')
  t.equal(totp(key, 20_000_000_000_000, 8), '65353130')
})

async function confirmed(app: FastifyInstance, account: Account): Promise<Record<string, string>> {
  return { ...account.bearer, 'x-password-confirmation': await confirmPassword(app, account) }
}

/** Turns TOTP on for `account`; answers its key and recovery codes. */
async function enableTotp(
  t: Test,
  app: FastifyInstance,
  clock: TestClock,
  account: Account,
): Promise<{ key: Buffer; recoveryCodes: string[]; headers: Record<string, string> }> {
  const headers = await confirmed(app, account)
  const setup = await app.inject({ method: 'POST', url: '/users/me/mfa/totp', headers })
  t.equal(setup.statusCode, 200, 'set-up answers a secret')
  const { secret, otpauthUri } = setup.json()
  const uri = new URL(otpauthUri)
  t.equal(uri.protocol, 'otpauth:')
  t.equal(uri.host, 'totp')
  t.equal(uri.searchParams.get('secret'), secret, 'the URI carries the same secret')
  t.equal(uri.searchParams.get('issuer'), 'latchkey')
  t.match(decodeURIComponent(uri.pathname), account.email, 'the URI names the account')
  const key = base32Decode(secret)
  t.ok(key.length >= 20, 'at least 160 bits')
  const confirm = await app.inject({
    method: 'POST',
    url: '/users/me/mfa/totp/confirm',
    headers,
    payload: { code: totp(key, clock.now()) },
  })
  t.equal(confirm.statusCode, 200, confirm.body)
  const { recoveryCodes } = confirm.json()
  t.equal(recoveryCodes.length, 10, 'ten recovery codes')
  t.equal(new Set(recoveryCodes).size, 10, 'all different')
  // The confirming code is used: the next one must come from a later step.
  clock.advance(STEP)
  return { key, recoveryCodes, headers }
}

async function passwordLogin(app: FastifyInstance, email: string, password = PASSWORD) {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
}

async function verify(app: FastifyInstance, payload: Record<string, string>) {
  return app.inject({ method: 'POST', url: '/auth/mfa/verify', payload })
}

t.test('TOTP end to end: set up, log in with a code, replay refused, drift of one step', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const before = await app.inject({ url: '/users/me', headers: account.bearer })
  t.same(before.json().factors, { totp: false, passkeys: 0, recoveryCodes: 0 })

  const { key } = await enableTotp(t, app, clock, account)
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.same(me.json().factors, { totp: true, passkeys: 0, recoveryCodes: 10 }, 'GET /users/me shows the factor')

  // The right password no longer signs in by itself.
  const first = await passwordLogin(app, account.email)
  t.equal(first.statusCode, 200)
  const pending = first.json()
  t.equal(pending.mfaRequired, true)
  t.same(pending.factors, ['totp', 'recovery_code'])
  t.type(pending.mfaToken, 'string')
  t.notOk(pending.accessToken, 'no access token before the second factor')
  t.same(first.cookies, [], 'no cookie before the second factor')

  // A wrong password still says nothing about the factor.
  const wrong = await passwordLogin(app, account.email, 'not the password at all')
  t.equal(wrong.json().code, 'INVALID_CREDENTIALS')

  // The mfaToken is not an access token.
  const asAccess = await app.inject({ url: '/users/me', headers: { authorization: `Bearer ${pending.mfaToken}` } })
  t.equal(asAccess.statusCode, 401)

  const code = totp(key, clock.now())
  const signedIn = await verify(app, { mfaToken: pending.mfaToken, code })
  t.equal(signedIn.statusCode, 200, signedIn.body)
  t.type(signedIn.json().accessToken, 'string')
  t.ok(cookiesOf(signedIn).refresh_token, 'the session cookies are set')
  const sessions = await app.inject({
    url: '/auth/sessions',
    headers: { authorization: `Bearer ${signedIn.json().accessToken}` },
  })
  const current = sessions.json().items.find((item: { current: boolean }) => item.current)
  t.equal(current.signInMethod, 'password+totp', 'the session says how it signed in')

  // The mfaToken works once.
  const again = await verify(app, { mfaToken: pending.mfaToken, code })
  t.equal(again.statusCode, 401)
  t.equal(again.json().code, 'MFA_TOKEN_INVALID')

  // The same code is refused on a new login within its window (replay).
  const second = (await passwordLogin(app, account.email)).json()
  const replay = await verify(app, { mfaToken: second.mfaToken, code })
  t.equal(replay.statusCode, 401)
  t.equal(replay.json().code, 'MFA_CODE_INVALID', 'a used code is refused')

  // One step of drift either way is accepted; two are not; and never a step
  // older than the newest one accepted.
  clock.advance(STEP * 3)
  const late = await verify(app, { mfaToken: second.mfaToken, code: totp(key, clock.now() - STEP * 2) })
  t.equal(late.json().code, 'MFA_CODE_INVALID', 'a code two steps old is refused')
  const ahead2 = await verify(app, { mfaToken: second.mfaToken, code: totp(key, clock.now() + STEP * 2) })
  t.equal(ahead2.json().code, 'MFA_CODE_INVALID', 'a code two steps ahead is refused')
  const behind1 = await verify(app, { mfaToken: second.mfaToken, code: totp(key, clock.now() - STEP) })
  t.equal(behind1.statusCode, 200, 'a code one step old is accepted')
  const third = (await passwordLogin(app, account.email)).json()
  const ahead1 = await verify(app, { mfaToken: third.mfaToken, code: totp(key, clock.now() + STEP) })
  t.equal(ahead1.statusCode, 200, 'a code one step ahead is accepted')
  const fourth = (await passwordLogin(app, account.email)).json()
  const olderThanUsed = await verify(app, { mfaToken: fourth.mfaToken, code: totp(key, clock.now()) })
  t.equal(olderThanUsed.json().code, 'MFA_CODE_INVALID', 'a code older than the newest one used is refused')
})

t.test('recovery codes work once, mail a notice, and can be replaced', async (t) => {
  const inbox: Inbox = await startInbox(t)
  const { app, clock } = await buildTestApp(t, mailEnv(inbox))
  const account = await signup(app)
  const { recoveryCodes, headers } = await enableTotp(t, app, clock, account)
  const [firstCode = '', secondCode = ''] = recoveryCodes

  const pending = (await passwordLogin(app, account.email)).json()
  // Typed with other case and without the hyphen, it still counts.
  const used = await verify(app, { mfaToken: pending.mfaToken, recoveryCode: firstCode.replace('-', '').toUpperCase() })
  t.equal(used.statusCode, 200, used.body)
  const token = used.json().accessToken
  const sessions = await app.inject({ url: '/auth/sessions', headers: { authorization: `Bearer ${token}` } })
  const current = sessions.json().items.find((item: { current: boolean }) => item.current)
  t.equal(current.signInMethod, 'password+recovery_code')

  const next = (await passwordLogin(app, account.email)).json()
  const reused = await verify(app, { mfaToken: next.mfaToken, recoveryCode: firstCode })
  t.equal(reused.json().code, 'MFA_CODE_INVALID', 'a recovery code works once')
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(me.json().factors.recoveryCodes, 9)

  let notice: { subject: string; text: string } | undefined
  for (let i = 0; i < 100 && !notice; i++) {
    notice = inbox.to(account.email).find((mail) => /recovery code/i.test(mail.subject))
    if (!notice) await sleep(50)
  }
  t.ok(notice, 'the account is mailed a notice')
  t.match(notice?.text, /9 codes are left/)
  t.notMatch(notice?.text, firstCode, 'the notice does not repeat the code')

  const events = await app.inject({ url: '/users/me/security-events', headers: account.bearer })
  const types = events.json().items.map((event: { type: string }) => event.type)
  t.ok(types.includes('recovery_code_used'))
  t.ok(types.includes('totp_enabled'))

  // New codes replace the old ones.
  const renewed = await app.inject({ method: 'POST', url: '/users/me/mfa/recovery-codes', headers })
  t.equal(renewed.statusCode, 200)
  t.equal(renewed.json().recoveryCodes.length, 10)
  const withOld = await verify(app, { mfaToken: next.mfaToken, recoveryCode: secondCode })
  t.equal(withOld.json().code, 'MFA_CODE_INVALID', 'an old code stops working')
  const withNew = await verify(app, { mfaToken: next.mfaToken, recoveryCode: renewed.json().recoveryCodes[0] })
  t.equal(withNew.statusCode, 200, withNew.body)

  // Only hashes are stored.
  const rows = await app.db.selectFrom('recovery_codes').select('code_hash').execute()
  for (const code of renewed.json().recoveryCodes as string[]) {
    t.notOk(
      rows.some((row) => row.code_hash.includes(code.replace('-', ''))),
      'no code in clear',
    )
  }
})

t.test('turning TOTP on or off needs a password confirmation; off ends the codes', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const noConfirmation = await app.inject({ method: 'POST', url: '/users/me/mfa/totp', headers: account.bearer })
  t.equal(noConfirmation.statusCode, 403)
  t.equal(noConfirmation.json().code, 'PASSWORD_CONFIRMATION_REQUIRED')

  const { key, headers } = await enableTotp(t, app, clock, account)
  const twice = await app.inject({ method: 'POST', url: '/users/me/mfa/totp', headers })
  t.equal(twice.json().code, 'TOTP_ALREADY_ENABLED', 'set-up cannot replace a working factor')

  const offWithout = await app.inject({ method: 'DELETE', url: '/users/me/mfa/totp', headers: account.bearer })
  t.equal(offWithout.statusCode, 403, 'turning it off needs a confirmation')
  // A TOTP code can confirm instead of the password (step-up).
  const stepUp = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation',
    headers: account.bearer,
    payload: { code: totp(key, clock.now()) },
  })
  t.equal(stepUp.statusCode, 200, stepUp.body)
  const off = await app.inject({
    method: 'DELETE',
    url: '/users/me/mfa/totp',
    headers: { ...account.bearer, 'x-password-confirmation': stepUp.json().passwordConfirmationToken },
  })
  t.equal(off.statusCode, 204)
  const login = await passwordLogin(app, account.email)
  t.type(login.json().accessToken, 'string', 'the password alone signs in again')
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.same(me.json().factors, { totp: false, passkeys: 0, recoveryCodes: 0 }, 'the recovery codes went with it')
  const offAgain = await app.inject({ method: 'DELETE', url: '/users/me/mfa/totp', headers })
  t.equal(offAgain.json().code, 'TOTP_NOT_ENABLED')
})

t.test('set-up is confirmed only by a right code; the secret is sealed at rest', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const headers = await confirmed(app, account)
  const setup = (await app.inject({ method: 'POST', url: '/users/me/mfa/totp', headers })).json()
  const key = base32Decode(setup.secret)
  const wrong = await app.inject({
    method: 'POST',
    url: '/users/me/mfa/totp/confirm',
    headers,
    payload: { code: totp(key, clock.now() + STEP * 5) },
  })
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'MFA_CODE_INVALID')
  const stillOff = await passwordLogin(app, account.email)
  t.type(stillOff.json().accessToken, 'string', 'an unconfirmed set-up changes nothing at login')
  const malformed = await app.inject({
    method: 'POST',
    url: '/users/me/mfa/totp/confirm',
    headers,
    payload: { code: '12345' },
  })
  t.equal(malformed.json().code, 'VALIDATION_FAILED')
  const row = await app.db.selectFrom('totp_credentials').selectAll().executeTakeFirstOrThrow()
  t.notOk(Buffer.from(row.ciphertext).toString('latin1').includes(setup.secret), 'the secret is not stored in clear')
  t.notOk(Buffer.from(row.ciphertext).includes(key), 'nor its bytes')
})

t.test('mfaToken: expires after 5 minutes, ends after 5 wrong codes, counts failed logins', async (t) => {
  const { app, clock } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '8' })
  const account = await signup(app)
  const { key } = await enableTotp(t, app, clock, account)

  const expiring = (await passwordLogin(app, account.email)).json()
  clock.advance(5 * 60_000)
  const expired = await verify(app, { mfaToken: expiring.mfaToken, code: totp(key, clock.now()) })
  t.equal(expired.json().code, 'MFA_TOKEN_INVALID', 'an mfaToken lasts 5 minutes')

  const guessed = (await passwordLogin(app, account.email)).json()
  const wrongCode = totp(key, clock.now() + STEP * 10)
  for (let i = 1; i <= 5; i++) {
    const response = await verify(app, { mfaToken: guessed.mfaToken, code: wrongCode })
    t.equal(response.json().code, 'MFA_CODE_INVALID', `wrong code ${i}`)
  }
  const afterFive = await verify(app, { mfaToken: guessed.mfaToken, code: totp(key, clock.now()) })
  t.equal(afterFive.json().code, 'MFA_TOKEN_INVALID', 'five wrong codes end the mfaToken')

  // Wrong codes count against the account's failed-login limit (8 here, with the passwords).
  let throttled = false
  for (let i = 0; i < 6 && !throttled; i++) {
    const pending = await passwordLogin(app, account.email)
    if (pending.statusCode === 429) {
      throttled = true
      break
    }
    const response = await verify(app, { mfaToken: pending.json().mfaToken, code: wrongCode })
    throttled = response.statusCode === 429
  }
  t.ok(throttled, 'wrong codes lead to 429 like wrong passwords')

  const other = await verify(app, { mfaToken: 'x'.repeat(43), code: '123456' })
  t.equal(other.json().code, 'MFA_TOKEN_INVALID', 'an unknown mfaToken')
  const both = await verify(app, { mfaToken: 'x'.repeat(43), code: '123456', recoveryCode: 'abcde-12345' })
  t.equal(both.json().code, 'VALIDATION_FAILED', 'one of code and recoveryCode, not both')
})

t.test('an mfaToken is bound to its user: no other account signs in with it', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const alice = await signup(app)
  const bob = await signup(app)
  const aliceTotp = await enableTotp(t, app, clock, alice)
  const bobTotp = await enableTotp(t, app, clock, bob)
  const pending = (await passwordLogin(app, alice.email)).json()
  const withBobsCode = await verify(app, { mfaToken: pending.mfaToken, code: totp(bobTotp.key, clock.now()) })
  t.equal(withBobsCode.json().code, 'MFA_CODE_INVALID', "another account's code is wrong here")
  const withBobsRecovery = await verify(app, {
    mfaToken: pending.mfaToken,
    recoveryCode: bobTotp.recoveryCodes[0] as string,
  })
  t.equal(withBobsRecovery.json().code, 'MFA_CODE_INVALID', "another account's recovery code is wrong here")
  const right = await verify(app, { mfaToken: pending.mfaToken, code: totp(aliceTotp.key, clock.now()) })
  t.equal(right.json().user.id, alice.userId, 'the session is of the user who typed the password')
})

t.test('a sign-in link of an account with TOTP asks for the code too', async (t) => {
  const inbox: Inbox = await startInbox(t)
  const { app, clock } = await buildTestApp(t, mailEnv(inbox))
  const account = await signup(app)
  const { key } = await enableTotp(t, app, clock, account)
  const asked = await app.inject({ method: 'POST', url: '/auth/sign-in-link', payload: { email: account.email } })
  t.equal(asked.statusCode, 202)
  let token: string | undefined
  for (let i = 0; i < 100 && !token; i++) {
    token = inbox.to(account.email).find((mail) => mail.link?.action === 'sign-in')?.link?.token
    if (!token) await sleep(50)
  }
  t.ok(token, 'the link arrived')
  const followed = await app.inject({ method: 'POST', url: '/auth/sign-in-link/confirm', payload: { token } })
  t.equal(followed.statusCode, 200)
  t.equal(followed.json().mfaRequired, true, 'the link alone does not sign in')
  t.same(followed.cookies, [], 'no cookie before the code')
  const signedIn = await verify(app, { mfaToken: followed.json().mfaToken, code: totp(key, clock.now()) })
  t.equal(signedIn.statusCode, 200, signedIn.body)
  const sessions = await app.inject({
    url: '/auth/sessions',
    headers: { authorization: `Bearer ${signedIn.json().accessToken}` },
  })
  const current = sessions.json().items.find((item: { current: boolean }) => item.current)
  t.equal(current.signInMethod, 'link+totp')
})
