// The mailed-link flows from the account page, in headless Chromium, with the
// mails read from the development outbox (<DATA_DIR>/outbox/*.eml, no SMTP_URL)
// and their links followed as a person would: "Forgot password?" -> mail ->
// link -> new password -> signed in (every other session ended); sign-in by
// link; the "confirm your email" banner, its resend button, and its end when
// the link is opened; and with REQUIRE_EMAIL_VERIFICATION, the refused log-in
// before confirmation and an email change waiting for its link. Every link's
// token leaves the address bar at once, and a link works once.
import { existsSync } from 'node:fs'
import type { Page } from 'playwright-core'
import t from 'tap'
import { sleep, uniqueEmail } from '../helper.js'
import {
  alertWith,
  CHROMIUM,
  form,
  linkOf,
  logIn,
  openDevice,
  outbox,
  PASSWORD,
  screenshot,
  signUp,
  startLatchkey,
  statusWith,
  viaApi,
  waitForMail,
  waitSignedIn,
  waitSignedOut,
} from './account-helper.js'

const VERIFY = /^Confirm your email address$/
const RESET = /^Reset your password$/
const SIGN_IN = /^Your sign-in link$/
const CHANGE = /^Confirm your new email address$/

const notice = (page: Page) => page.locator('#notice')

/** What `follow` needs of a tap test. */
interface Checks {
  notMatch(found: string, pattern: RegExp, message: string): unknown
}

/** Opens a mailed link in `page`, and checks that its token left the address bar. */
async function follow(t: Checks, page: Page, url: string): Promise<void> {
  await page.goto(url)
  await page.waitForFunction(() => !window.location.hash)
  t.notMatch(page.url(), /token|#/, 'the token is out of the address bar')
}

declare const window: { location: { hash: string } }

if (!existsSync(CHROMIUM)) {
  t.skip(`account page in Chromium: ${CHROMIUM} is not installed (apt-get install chromium)`, () => {})
} else {
  t.test('mailed links (verification optional)', async (t) => {
    const { app, origin, dir } = await startLatchkey(t)
    const email = uniqueEmail('mail')
    const name = 'Mary'
    const desk = await openDevice(t)
    const page = desk.page
    await page.goto(`${origin}/`)
    await signUp(page, email, name)
    await waitSignedIn(page, name)

    await t.test('the "confirm your email" banner: send again, open the link, the banner is gone', async (t) => {
      const banner = page.getByRole('region', { name: 'Confirm your email address' })
      await banner.waitFor()
      t.match(await banner.innerText(), email)
      await waitForMail(dir, email, VERIFY, 1)
      await banner.getByRole('button', { name: 'Send the link again' }).click()
      await statusWith(page, `Sent. Check the inbox of ${email}.`).waitFor()
      await screenshot(page, 'email-01-verify-banner')
      const mail = await waitForMail(dir, email, VERIFY, 2)
      const link = linkOf(mail)
      t.equal(link.action, 'verify-email')
      t.ok(
        link.url.startsWith(`${origin}/#action=verify-email&token=`),
        'the link opens this page, token in the fragment',
      )
      // Opened in the tab that is already open: only the fragment changes.
      await follow(t, page, link.url)
      await notice(page).getByText(`Your email address ${email} is confirmed.`).waitFor()
      await banner.waitFor({ state: 'hidden' })
      const { user } = await viaApi<{ user: { emailVerified: boolean } }>(app, email, '/users/me')
      t.equal(user.emailVerified, true, 'the API agrees')
      // A link works once.
      await follow(t, page, link.url)
      await notice(page).getByText('This confirmation link has expired, was already used').waitFor()
      t.equal(await banner.isVisible(), false)
      await waitSignedIn(page, name)
    })

    await t.test('forgot password -> mail -> link -> new password -> signed in; other sessions end', async (t) => {
      const laptop = await openDevice(t)
      await laptop.page.goto(`${origin}/`)
      await waitSignedOut(laptop.page)
      await form(laptop.page, 'Log in').getByLabel('Email', { exact: true }).fill(email)
      await laptop.page.getByRole('button', { name: 'Forgot password?' }).click()
      const forgot = form(laptop.page, 'Reset your password')
      t.equal(await forgot.getByLabel('Email', { exact: true }).inputValue(), email, 'starts from the typed address')
      await forgot.getByRole('button', { name: 'Send reset link' }).click()
      await statusWith(
        laptop.page,
        `If an account uses ${email}, a link to choose a new password is on its way.`,
      ).waitFor()
      // An address without an account gets the same answer, and no mail.
      const nobody = uniqueEmail('nobody')
      await forgot.getByLabel('Email', { exact: true }).fill(nobody)
      await forgot.getByRole('button', { name: 'Send reset link' }).click()
      await statusWith(
        laptop.page,
        `If an account uses ${nobody}, a link to choose a new password is on its way.`,
      ).waitFor()
      await screenshot(laptop.page, 'email-02-forgot-password')

      const link = linkOf(await waitForMail(dir, email, RESET))
      t.equal(link.action, 'reset-password')
      await follow(t, laptop.page, link.url)
      const reset = form(laptop.page, 'Choose a new password')
      await reset.waitFor()
      await reset.getByLabel('Email', { exact: true }).fill(email)
      await reset.getByLabel('New password', { exact: true }).fill('password')
      await reset.getByRole('button', { name: 'Set new password' }).click()
      await alertWith(laptop.page, 'That password is too weak').waitFor()
      await screenshot(laptop.page, 'email-03-reset-form')
      const newPassword = 'a fresh start for mary'
      await reset.getByLabel('New password', { exact: true }).fill(newPassword)
      await reset.getByRole('button', { name: 'Set new password' }).click()
      await waitSignedIn(laptop.page, name)
      await notice(laptop.page).getByText('Your new password is set, and every other session is logged out.').waitFor()
      t.equal((await outbox(dir)).filter((mail) => mail.to === nobody).length, 0, 'no mail to an unknown address')

      // The first device's session ended with the reset.
      await page.reload()
      await waitSignedOut(page)
      // The link worked once.
      await follow(t, laptop.page, link.url)
      await reset.getByLabel('Email', { exact: true }).fill(email)
      await reset.getByLabel('New password', { exact: true }).fill('yet another passphrase')
      await reset.getByRole('button', { name: 'Set new password' }).click()
      await notice(laptop.page).getByText('This password-reset link has expired or was already used.').waitFor()
      t.ok(await form(laptop.page, 'Reset your password').isVisible(), 'and the way to ask for a new one is open')
      const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: newPassword } })
      t.equal(login.statusCode, 200, 'the new password stands')
      t.same(laptop.problems, [])
    })

    await t.test('sign in by an emailed link', async (t) => {
      const phone = await openDevice(t)
      await phone.page.goto(`${origin}/`)
      await waitSignedOut(phone.page)
      await phone.page.getByRole('button', { name: 'Email me a sign-in link' }).click()
      const request = form(phone.page, 'Sign in by email')
      await request.getByLabel('Email', { exact: true }).fill(email)
      await request.getByRole('button', { name: 'Send sign-in link' }).click()
      await statusWith(phone.page, `If an account uses ${email}, a sign-in link is on its way.`).waitFor()
      const link = linkOf(await waitForMail(dir, email, SIGN_IN))
      t.equal(link.action, 'sign-in')
      await follow(t, phone.page, link.url)
      await waitSignedIn(phone.page, name)
      await notice(phone.page).getByText('You are signed in.').waitFor()
      await phone.page.reload()
      await waitSignedIn(phone.page, name)
      await screenshot(phone.page, 'email-04-signed-in-by-link')
      // Once only: in a fresh browser the same link is refused, and says what to do.
      const other = await openDevice(t)
      await follow(t, other.page, link.url)
      await notice(other.page).getByText('This sign-in link has expired or was already used.').waitFor()
      await waitSignedOut(other.page)
      t.same(phone.problems, [])
      t.same(other.problems, [])
    })
  })

  t.test('mailed links with REQUIRE_EMAIL_VERIFICATION=true (and SIGN_IN_LINKS=false)', async (t) => {
    const { app, origin, dir } = await startLatchkey(t, {
      // A 2-second access token: the refresh after it is where an unconfirmed address is refused.
      env: { REQUIRE_EMAIL_VERIFICATION: 'true', SIGN_IN_LINKS: 'false', JWT_ACCESS_TOKEN_DURATION: '2s' },
    })
    const email = uniqueEmail('strict')
    const name = 'Sam'
    const { page, problems } = await openDevice(t)
    await page.goto(`${origin}/`)
    await waitSignedOut(page)
    t.equal(await page.getByRole('button', { name: 'Email me a sign-in link' }).count(), 0, 'no sign-in links offered')

    await t.test('log-in waits for the confirmation; the link lets it in', async (t) => {
      await signUp(page, email, name)
      await waitSignedIn(page, name)
      // Signed up, not confirmed: the first access token works, its refresh is refused.
      await sleep(3_000)
      await page.getByLabel('New task', { exact: true }).fill('After the access token')
      await page.getByRole('button', { name: 'Add task' }).click()
      await waitSignedOut(page)
      await notice(page).getByText('Confirm your email address to go on: open the link we mailed you').waitFor()
      await logIn(page, email)
      await alertWith(page, 'Confirm your email address first: open the link we mailed you.').waitFor()
      t.match(await page.locator('#login-error').innerText(), /"Forgot password\?" below sends a link/)
      await screenshot(page, 'email-05-not-verified')
      const link = linkOf(await waitForMail(dir, email, VERIFY))
      await follow(t, page, link.url)
      await notice(page).getByText(`Your email address ${email} is confirmed.`).waitFor()
      await logIn(page, email)
      await waitSignedIn(page, name)
      t.equal(await page.getByRole('region', { name: 'Confirm your email address' }).isVisible(), false)
    })

    await t.test('an email change waits for the link mailed to the new address', async (t) => {
      const newEmail = uniqueEmail('moved')
      const profile = form(page, 'Name and email')
      await profile.getByLabel('Email', { exact: true }).fill(newEmail)
      await profile.getByLabel('Current password', { exact: true }).fill(PASSWORD)
      await profile.getByRole('button', { name: 'Save changes' }).click()
      await statusWith(page, `We mailed a link to ${newEmail}. Your address changes when you open it.`).waitFor()
      const pending = page.getByRole('region', { name: 'Email change waiting for confirmation' })
      await pending.waitFor()
      t.match(await pending.innerText(), new RegExp(`link to ${newEmail}[\\s\\S]*stays ${email}`))
      await page.getByText(`Signed in as ${email}`).waitFor()
      await screenshot(page, 'email-06-change-pending')
      await waitForMail(dir, email, /^Your email address is about to change$/)
      const link = linkOf(await waitForMail(dir, newEmail, CHANGE))
      t.equal(link.action, 'confirm-email-change')
      await follow(t, page, link.url)
      await notice(page).getByText(`Your email address is now ${newEmail}.`).waitFor()
      await page.getByText(`Signed in as ${newEmail}`).waitFor()
      await pending.waitFor({ state: 'hidden' })
      const { user } = await viaApi<{ user: { email: string; emailVerified: boolean } }>(app, newEmail, '/users/me')
      t.match(user, { email: newEmail, emailVerified: true }, 'the API agrees')
      t.same(problems, [])
    })
  })
}
