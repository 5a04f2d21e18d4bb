// Second factors on the account page, in headless Chromium: an authenticator
// app (TOTP, its codes computed by test/totp.ts from the key the page shows)
// and passkeys, made by a virtual authenticator of the DevTools protocol
// (WebAuthn.addVirtualAuthenticator through playwright-core's CDP session):
// register a passkey, log out, sign in with it and no password; a browser
// profile without the credential cannot; a replayed or re-addressed assertion
// is refused; a deleted passkey stops working.
import { existsSync } from 'node:fs'
import type { CDPSession, Page } from 'playwright-core'
import t from 'tap'
import { base32Decode, totp } from '../totp.js'
import {
  alertWith,
  CHROMIUM,
  type Device,
  form,
  logIn,
  openDevice,
  PASSWORD,
  signUp,
  startLatchkey,
  statusWith,
  waitSignedIn,
  waitSignedOut,
} from './account-helper.js'

/** A platform authenticator with user verification, as a phone or laptop has, that says yes at once. */
async function addVirtualAuthenticator(device: Device): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await device.context.newCDPSession(device.page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  })
  return { cdp, authenticatorId }
}

async function securityPassword(page: Page, value = PASSWORD): Promise<void> {
  await form(page, 'Sign-in security').getByLabel('Current password', { exact: true }).fill(value)
}

async function logOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Log out', exact: true }).click()
  await waitSignedOut(page)
}

/** The body the page sends to `path`, taken before it leaves the browser (the server never sees it). */
async function interceptBody(page: Page, path: string, act: () => Promise<void>): Promise<Record<string, unknown>> {
  let body: Record<string, unknown> | undefined
  await page.route(`**${path}`, async (route) => {
    body = route.request().postDataJSON() as Record<string, unknown>
    await route.abort()
  })
  await act()
  for (let i = 0; i < 100 && body === undefined; i++) await page.waitForTimeout(50)
  await page.unroute(`**${path}`)
  if (body === undefined) throw new Error(`no request to ${path}`)
  return body
}

if (!existsSync(CHROMIUM)) {
  t.skip(`second factors in Chromium: ${CHROMIUM} is not installed (apt-get install chromium)`, () => {})
} else {
  t.test('an authenticator app: set it up on the page, then log in with a code', async (t) => {
    const { app, origin } = await startLatchkey(t)
    const device = await openDevice(t)
    const { page } = device
    const email = `totp-${Date.now()}@example.com`
    await page.goto(`${origin}/`)
    await signUp(page, email, 'Tove')
    await waitSignedIn(page, 'Tove')

    await securityPassword(page)
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click()
    await page.getByRole('heading', { name: 'Scan this code with your app' }).waitFor()
    const qr = await page.getByRole('img', { name: 'QR code of your authenticator key' }).getAttribute('src')
    t.match(qr, /^data:image\/svg\+xml/, 'the QR code is drawn in the page')
    t.match(decodeURIComponent(qr ?? ''), /<svg/, 'as SVG')
    const secret = (await page.locator('#totp-secret').textContent()) ?? ''
    t.match(secret, /^[A-Z2-7]{32}$/, 'the key is shown for typing')
    const key = base32Decode(secret)
    await page.getByLabel('Code from the app', { exact: true }).fill(totp(key, Date.now()))
    await page.getByRole('button', { name: 'Turn on' }).click()
    await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor()
    const codes = await page.locator('#recovery-codes li').allTextContents()
    t.equal(codes.length, 10, 'ten recovery codes shown once')
    await statusWith(page, 'Your authenticator app is on.').waitFor()
    await page.getByRole('button', { name: 'I have saved them' }).click()
    t.equal(await page.locator('#recovery-codes li').count(), 0, 'and gone from the page once saved')

    await logOut(page)
    await logIn(page, email)
    await page.getByRole('heading', { name: 'Two-step sign-in' }).waitFor()
    // A recovery code works as well as a code from the app.
    await form(page, 'Two-step sign-in')
      .getByLabel('Code', { exact: true })
      .fill(codes[0] ?? '')
    await page.getByRole('button', { name: 'Verify' }).click()
    await waitSignedIn(page, 'Tove')
    await statusWith(page, /9 recovery codes left/).waitFor()

    await logOut(page)
    await logIn(page, email)
    await form(page, 'Two-step sign-in').getByLabel('Code', { exact: true }).fill('000000')
    await page.getByRole('button', { name: 'Verify' }).click()
    await alertWith(page, 'That code is not right').waitFor()
    // The next step's code: the one of this step may have been used at set-up.
    await form(page, 'Two-step sign-in')
      .getByLabel('Code', { exact: true })
      .fill(totp(key, Date.now() + 30_000))
    await page.getByRole('button', { name: 'Verify' }).click()
    await waitSignedIn(page, 'Tove')
    const methods = await app.db.selectFrom('sessions').select('sign_in_method').orderBy('created_at').execute()
    t.same(
      methods.map((row) => row.sign_in_method),
      ['signup', 'password+recovery_code', 'password+totp'],
      'each session says how it signed in',
    )
    t.same(device.problems, [], 'no errors in the console')
  })

  t.test('passkeys: register on the page, sign in with no password, and what cannot', async (t) => {
    const { app, origin } = await startLatchkey(t)
    const device = await openDevice(t)
    const { page } = device
    const { cdp, authenticatorId } = await addVirtualAuthenticator(device)
    const email = `passkey-${Date.now()}@example.com`
    await page.goto(`${origin}/`)
    await signUp(page, email, 'Pia')
    await waitSignedIn(page, 'Pia')

    // Adding one needs the password.
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await alertWith(page, 'Type your current password first').waitFor()
    await securityPassword(page)
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await statusWith(page, 'Added the passkey').waitFor()
    const passkeys = page.getByRole('list', { name: 'Passkeys', exact: true })
    await passkeys.getByText('Passkey', { exact: true }).waitFor()
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
    t.equal(credentials.length, 1, 'the authenticator holds one credential')
    t.equal(credentials[0]?.isResidentCredential, true, 'a discoverable one (usernameless sign-in)')

    // Rename it.
    await passkeys.getByRole('button', { name: /^Rename/ }).click()
    await page.getByLabel('New name for Passkey').fill('My laptop')
    await passkeys.getByRole('button', { name: 'Save', exact: true }).click()
    await passkeys.getByText('My laptop', { exact: true }).waitFor()

    await logOut(page)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await waitSignedIn(page, 'Pia')
    const passkeySessions = await app.db
      .selectFrom('sessions')
      .select('id')
      .where('sign_in_method', '=', 'passkey')
      .execute()
    t.equal(passkeySessions.length, 1, 'signed in by passkey, and the session says so')

    // Step-up by the passkey instead of the password (as a page without the password would do it).
    const stepUp = await page.evaluate(`(async () => {
      const options = await (await fetch('/auth/passkeys/authentication-options', { method: 'POST' })).json()
      const response = await window.SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: options })
      const confirmed = await fetch('/auth/password-confirmation', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ passkey: response }),
      })
      return confirmed.status
    })()`)
    t.equal(stepUp, 200, 'a passkey confirms like the password')

    // An assertion the page made, taken before it reached the server: sent
    // once with the user handle of another account, it is refused; sent again
    // as it was, its challenge is spent.
    await logOut(page)
    const other = await app.inject({
      method: 'POST',
      url: '/auth/signup',
      payload: { email: `other-${Date.now()}@example.com`, password: PASSWORD },
    })
    const otherId = other.json().user.id as string
    const assertion = await interceptBody(page, '/auth/passkeys/login', () =>
      page.getByRole('button', { name: 'Sign in with a passkey' }).click(),
    )
    const response = assertion.response as { response: { userHandle?: string } }
    const asOther = structuredClone(response)
    asOther.response.userHandle = Buffer.from(otherId, 'utf8').toString('base64url')
    const send = (body: unknown) =>
      app.inject({ method: 'POST', url: '/auth/passkeys/login', headers: { origin }, payload: { response: body } })
    const forged = await send(asOther)
    t.equal(forged.statusCode, 401, 'a passkey of one account does not sign in as another')
    t.equal(forged.json().code, 'PASSKEY_VERIFICATION_FAILED')
    const replayed = await send(response)
    t.equal(replayed.statusCode, 401, 'a challenge works once')
    const otherSessions = await app.db.selectFrom('sessions').select('id').where('user_id', '=', otherId).execute()
    t.equal(otherSessions.length, 1, 'the other account has only its own sign-up session')

    // A second profile, whose authenticator lacks the credential, cannot sign in.
    const stranger = await openDevice(t)
    await addVirtualAuthenticator(stranger)
    await stranger.page.goto(`${origin}/`)
    await stranger.page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await alertWith(stranger.page, /passkey/i).waitFor()
    t.equal(await stranger.page.locator('#signed-in').isHidden(), true, 'the stranger stays signed out')

    // A counter that went back means a cloned authenticator: refused.
    await app.db.updateTable('passkeys').set({ counter: 1_000_000 }).execute()
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await alertWith(page, 'The passkey could not be used here').waitFor()
    await app.db.updateTable('passkeys').set({ counter: 0 }).execute()

    // Deleting it (after the password) stops it working.
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await waitSignedIn(page, 'Pia')
    await securityPassword(page)
    await passkeys.getByRole('button', { name: /^Delete/ }).click()
    await page.getByRole('status').filter({ hasText: 'Deleted the passkey My laptop' }).waitFor({ state: 'attached' })
    t.equal(await passkeys.getByRole('listitem').count(), 0)
    await logOut(page)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await alertWith(page, 'The passkey could not be used here').waitFor()
    t.same(
      device.problems.filter((line) => !/401/.test(line)),
      [],
      'no errors in the console but the refused sign-ins',
    )
  })
}
