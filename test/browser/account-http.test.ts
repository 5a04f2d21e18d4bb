// The account page as a newcomer first reaches it, in headless Chromium:
// over plain http at another host name than localhost (http://<host>:3000/ on
// a VM; here `latchkey.test`, mapped to 127.0.0.1 by Chromium's host resolver),
// with Secure cookies (the default: the page explains what to do) and without
// (it works); a script that does not load (an error, not an endless
// "Loading"); and a signed-out visit, which asks the API nothing and logs no
// refused request in the console.
import { existsSync } from 'node:fs'
import t from 'tap'
import { uniqueEmail } from '../helper.js'
import {
  CHROMIUM,
  form,
  logIn,
  openDevice,
  PLAIN_HTTP_NOTES,
  screenshot,
  signUp,
  startLatchkey,
  waitSignedIn,
  waitSignedOut,
} from './account-helper.js'

const OTHER_HOST = 'latchkey.test'

/** The page's own three files: all a visit needs before anyone signs in. */
const pageFiles = (origin: string) => [
  `GET ${origin}/`,
  `GET ${origin}/account.css`,
  `GET ${origin}/account.js`,
  `GET ${origin}/vendor/simplewebauthn-browser.js`,
]

if (!existsSync(CHROMIUM)) {
  t.skip(`account page in Chromium: ${CHROMIUM} is not installed (apt-get install chromium)`, () => {})
} else {
  t.test('plain http at another host, Secure cookies (COOKIE_SECURE=true): the page says what to do', async (t) => {
    const { origin } = await startLatchkey(t, { host: OTHER_HOST, env: { COOKIE_SECURE: 'true' } })
    const { page, requests, failed, consoleErrors, problems } = await openDevice(t, {
      host: OTHER_HOST,
      ignore: PLAIN_HTTP_NOTES,
    })
    await page.goto(`${origin}/`)
    const heading = page.getByRole('heading', { name: 'This page needs https' })
    await heading.waitFor()
    const text = await page.locator('#insecure').innerText()
    t.match(text, origin, 'names the address it was opened at')
    t.match(text, /serve latchkey over https/, 'first fix: https')
    t.match(text, /COOKIE_SECURE=false/, 'second fix, for development')
    t.equal(await page.getByText('Loading your account…').isVisible(), false, 'no endless loading')
    t.equal(await form(page, 'Log in').isVisible(), false, 'no log-in form that could not keep its cookies')
    t.equal(await page.getByText('The account page did not load').isVisible(), false)
    await screenshot(page, 'http-01-secure-cookies-over-http')
    t.same(requests.sort(), pageFiles(origin), 'the assets came over http, and no API request was made')
    t.same(failed, [], 'no request failed (none was upgraded to https)')
    t.same(consoleErrors, [], 'nothing in the console')
    t.same(problems, [])
  })

  t.test('plain http at another host, COOKIE_SECURE=false: sign up, reload, still signed in', async (t) => {
    const { origin } = await startLatchkey(t, { host: OTHER_HOST, env: { COOKIE_SECURE: 'false' } })
    const { page, failed, problems, consoleErrors } = await openDevice(t, {
      host: OTHER_HOST,
      ignore: PLAIN_HTTP_NOTES,
    })
    await page.goto(`${origin}/`)
    await waitSignedOut(page)
    await signUp(page, uniqueEmail('vm'), 'Grace')
    await waitSignedIn(page, 'Grace')
    await page.reload()
    await waitSignedIn(page, 'Grace')
    t.equal(await page.getByRole('heading', { name: 'This page needs https' }).isVisible(), false)
    t.same(failed, [])
    t.same(consoleErrors, [], 'no refused request on the way')
    t.same(problems, [])
  })

  t.test('a script that does not load: an error after a few seconds, not an endless "Loading"', async (t) => {
    const { origin } = await startLatchkey(t)
    const { page, context } = await openDevice(t)
    await context.route('**/account.js', (route) => route.abort('connectionfailed'))
    await page.goto(`${origin}/`)
    t.ok(await page.getByText('Loading your account…').isVisible(), 'loading, at first')
    await page.getByRole('heading', { name: 'The account page did not load' }).waitFor()
    t.equal(await page.getByText('Loading your account…').isVisible(), false, 'the loading line is gone')
    t.match(await page.locator('.load-failed').innerText(), /Reload the page/)
    await screenshot(page, 'http-02-script-failed')
  })

  t.test('a signed-out visit asks the API nothing and logs nothing in the console', async (t) => {
    const { origin } = await startLatchkey(t)
    const { page, requests, consoleErrors, problems } = await openDevice(t)
    await page.goto(`${origin}/`)
    await waitSignedOut(page)
    await page.waitForLoadState('networkidle')
    t.same(requests.sort(), pageFiles(origin), 'a first visit: the page files only')
    t.same(consoleErrors, [], 'no refused request in the console')

    // Signed in, then out: a reload after log-out is as quiet.
    const email = uniqueEmail('quiet')
    await signUp(page, email, 'Quiet')
    await waitSignedIn(page, 'Quiet')
    await page.getByRole('button', { name: 'Log out', exact: true }).click()
    await waitSignedOut(page)
    requests.length = 0
    await page.reload({ waitUntil: 'networkidle' })
    await waitSignedOut(page)
    t.same(requests.sort(), pageFiles(origin), 'after log-out: the page files only')

    // And a signed-in reload asks, and is answered, without a refusal.
    await logIn(page, email)
    await waitSignedIn(page, 'Quiet')
    await page.reload({ waitUntil: 'networkidle' })
    await waitSignedIn(page, 'Quiet')
    t.same(consoleErrors, [], 'nothing logged at any step')
    t.same(problems, [])
  })
}
