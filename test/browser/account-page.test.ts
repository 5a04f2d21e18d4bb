// The account page at `/`. First, without a browser: what is served, with which
// headers, and that PUBLIC_ACCOUNT_PAGE=false turns it off. Then end to end in
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// against the real app on a real port: sign-up, tasks, reload, refresh of a
// 2-second access token (also two tabs at once), revoking another device,
// cross-site requests, log-out and account deletion. Screenshots of each state
// go to test-output/screenshots/.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { type BrowserContext, chromium, type Page, type Route } from 'playwright-core'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { buildTestApp, login, PASSWORD, sleep, TEST_ENV, tempDir, uniqueEmail } from '../helper.js'

/** What the helpers need of a tap test. */
interface Test {
  teardown(fn: () => unknown): void
}

// The page's globals, for the few lines evaluated in the browser (the project's
// TypeScript setup has no DOM library).
declare const document: {
  cookie: string
  activeElement: { id: string; tagName: string } | null
  documentElement: { scrollWidth: number }
}
declare const window: { innerWidth: number }
declare const localStorage: { length: number; key(index: number): string | null; getItem(key: string): string | null }
declare const sessionStorage: { length: number }
declare function getComputedStyle(element: unknown): { outlineStyle: string }

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const SCREENSHOTS = path.join(import.meta.dirname, '..', '..', 'test-output', 'screenshots')
const DESKTOP = { width: 1280, height: 800 }
const PHONE = { width: 360, height: 780 }
const IPHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'
/** Longer than the 2-second access token and its cookie. */
const PAST_EXPIRY_MS = 3_000

// ---------------------------------------------------------------- without a browser

t.test('the account page as served (no browser)', async (t) => {
  const { app } = await buildTestApp(t)

  const page = await app.inject('/')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/)
  t.equal(page.headers['cache-control'], 'no-cache')
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /default-src 'self'/)
  t.match(csp, /script-src 'self'(;|$)/, 'scripts only from this origin, none inline')
  t.match(csp, /script-src-attr 'none'/)
  t.notMatch(page.body, /<script(?![^>]*\ssrc=)[^>]*>/i, 'no inline script')
  t.notMatch(page.body, /\son[a-z]+\s*=/i, 'no inline event handler')
  t.notMatch(page.body, /<style|\sstyle\s*=/i, 'no inline style')
  t.match(page.body, /<script type="module" src="\/account\.js"><\/script>/)
  // Assets are same-origin and relative: nothing to upgrade, and over plain http
  // at another host the upgrade made every asset fail (test/browser/account-http.test.ts).
  t.notMatch(csp, /upgrade-insecure-requests/, 'no upgrade of the assets to https')
  // The settings the script needs before it asks the API anything; none is a secret.
  const settings = /<meta name="latchkey-settings" content="([^"]*)">/.exec(page.body)?.[1] ?? ''
  t.same(JSON.parse(settings.replaceAll('&quot;', '"')), {
    cookieSecure: true,
    signInLinks: true,
    requireEmailVerification: false,
  })
  t.ok(page.headers.etag, '/ can be revalidated')
  const unchanged = await app.inject({ url: '/', headers: { 'if-none-match': String(page.headers.etag) } })
  t.equal(unchanged.statusCode, 304, '/ revalidates')
  const head = await app.inject({ method: 'HEAD', url: '/index.html' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-type'], 'text/html; charset=utf-8')

  const assets: Array<[string, RegExp]> = [
    ['/account.js', /^(application|text)\/javascript/],
    ['/account.css', /^text\/css/],
  ]
  for (const [url, type] of assets) {
    const asset = await app.inject(url)
    t.equal(asset.statusCode, 200, url)
    t.match(asset.headers['content-type'], type, url)
    t.equal(asset.headers['cache-control'], 'public, max-age=300, must-revalidate', url)
    t.ok(asset.headers.etag, `${url} can be revalidated`)
    const again = await app.inject({ url, headers: { 'if-none-match': String(asset.headers.etag) } })
    t.equal(again.statusCode, 304, `${url} revalidates`)
  }
  const script = (await app.inject('/account.js')).body
  t.notMatch(script, /sessionStorage|document\.cookie/, 'the script keeps no token anywhere')
  // Web storage holds one bit, under one key, with a fixed value: "signed in here" (no token, no user data).
  const storageCalls = [...script.matchAll(/localStorage\.(\w+)\(([^)]*)\)/g)].map(
    ([, method, args]) => `${method}(${args})`,
  )
  t.same(
    [...new Set(storageCalls)].sort(),
    ['getItem(SIGNED_IN_HINT)', 'removeItem(SIGNED_IN_HINT)', "setItem(SIGNED_IN_HINT, 'yes')"],
    'localStorage only keeps the signed-in hint',
  )
  t.equal((script.match(/localStorage/g) ?? []).length, storageCalls.length, 'and is used nowhere else')
  t.match(script, /const SIGNED_IN_HINT = 'latchkey:signed-in'\n/)

  // Only the page's own files: nothing else from public/ or around it.
  for (const url of ['/public/account.js', '/account.js.map', '/index.htm', '/..%2fpackage.json', '/.env']) {
    const response = await app.inject(url)
    t.equal(response.statusCode, 404, url)
    t.equal(response.json().code, 'NOT_FOUND', url)
  }

  t.test('PUBLIC_ACCOUNT_PAGE=false turns it off', async (t) => {
    const { app } = await buildTestApp(t, { PUBLIC_ACCOUNT_PAGE: 'false' })
    for (const url of ['/', '/index.html', '/account.js', '/account.css']) {
      const response = await app.inject(url)
      t.equal(response.statusCode, 404, url)
      t.same(response.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'Not found' }, url)
      t.ok(response.headers['content-security-policy'], `${url}: security headers still on`)
    }
  })
})

// ---------------------------------------------------------------- helpers

interface Latchkey {
  app: FastifyInstance
  origin: string
}

/** The real app on a real port; the browser reaches it as `localhost`. */
async function startLatchkey(t: Test, env: Record<string, string> = {}): Promise<Latchkey> {
  const dir = tempDir(t)
  const config = loadConfig({ env: { ...TEST_ENV, DATA_DIR: dir, COOKIE_SECURE: 'false', ...env }, cwd: dir })
  const app = await buildApp(config)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { app, origin: `http://localhost:${port}` }
}

interface Device {
  context: BrowserContext
  page: Page
  /** Uncaught exceptions and CSP refusals seen in any page of the device. */
  problems: string[]
  /** Every POST /auth/refresh answered, in order. */
  refreshes: Array<{ page: Page; status: number; cookie: Promise<string> }>
}

/** One browser with a fresh profile: one device, with its own cookie jar. */
async function openDevice(
  t: Test,
  options: { viewport?: { width: number; height: number }; userAgent?: string } = {},
): Promise<Device> {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'latchkey-chromium-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: options.viewport ?? DESKTOP,
    ...(options.userAgent ? { userAgent: options.userAgent } : {}),
  })
  t.teardown(async () => {
    await context.close()
    rmSync(userDataDir, { recursive: true, force: true })
  })
  context.setDefaultTimeout(10_000)
  const device: Device = { context, page: context.pages()[0] ?? (await context.newPage()), problems: [], refreshes: [] }
  const watch = (page: Page) => {
    page.on('pageerror', (error) => device.problems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) device.problems.push(message.text())
    })
  }
  watch(device.page)
  context.on('page', watch)
  context.on('response', (response) => {
    if (!response.url().endsWith('/auth/refresh')) return
    // Recorded at once (the test counts them); the cookie sent is read later.
    const request = response.request()
    const cookie = request.allHeaders().then((headers) => headers.cookie ?? '')
    device.refreshes.push({ page: request.frame().page(), status: response.status(), cookie })
  })
  return device
}

async function screenshot(page: Page, name: string, viewport?: { width: number; height: number }): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  if (viewport) await page.setViewportSize(viewport)
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

/** No horizontal scrolling: everything fits the viewport's width. */
async function fitsWidth(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)
}

const form = (page: Page, name: 'Log in' | 'Sign up') => page.getByRole('form', { name })
const alertWith = (page: Page, text: string | RegExp) => page.getByRole('alert').filter({ hasText: text })
const taskList = (page: Page) => page.getByRole('list', { name: 'Tasks' })
const sessionList = (page: Page) => page.getByRole('list', { name: 'Sessions' })

async function waitSignedOut(page: Page): Promise<void> {
  await page.getByRole('heading', { name: 'Log in' }).waitFor()
}

async function waitSignedIn(page: Page, name: string): Promise<void> {
  await page.getByRole('heading', { name: `Hello, ${name}` }).waitFor()
}

async function logIn(page: Page, email: string, password: string): Promise<void> {
  const logInForm = form(page, 'Log in')
  await logInForm.getByLabel('Email', { exact: true }).fill(email)
  await logInForm.getByLabel('Password', { exact: true }).fill(password)
  await logInForm.getByRole('button', { name: 'Log in' }).click()
}

async function addTask(page: Page, title: string): Promise<void> {
  await page.getByLabel('New task', { exact: true }).fill(title)
  await page.getByRole('button', { name: 'Add task' }).click()
  await taskList(page).getByRole('checkbox', { name: title, exact: true }).waitFor()
}

async function taskTitles(page: Page): Promise<string[]> {
  return taskList(page)
    .getByRole('checkbox')
    .evaluateAll((boxes) => boxes.map((box) => box.labels?.[0]?.textContent ?? ''))
}

/** What the API itself says the account's tasks are (a separate, short session). */
async function tasksViaApi(app: FastifyInstance, email: string): Promise<string[]> {
  const account = await login(app, email)
  const response = await app.inject({ url: '/tasks?limit=100', headers: account.bearer })
  await app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer })
  return (response.json().items as Array<{ title: string }>).map((task) => task.title)
}

/**
 * Holds every POST /auth/refresh of the context until `count` of them are
 * waiting (or `timeoutMs` passed), then lets them all go at once.
 */
async function holdRefreshes(context: BrowserContext, count: number, timeoutMs: number) {
  const held: Route[] = []
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const timer = setTimeout(() => release(), timeoutMs)
  await context.route('**/auth/refresh', async (route) => {
    held.push(route)
    if (held.length >= count) release()
    await released
    await route.continue()
  })
  return {
    held,
    async stop() {
      clearTimeout(timer)
      await context.unroute('**/auth/refresh')
    },
  }
}

/** A tiny page of another site, whose scripts and forms aim at latchkey. */
async function startOtherSite(t: Test, target: string): Promise<number> {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another site</title></head>
<body>
  <h1>Another site</h1>
  <form id="text-form" method="POST" action="${target}/tasks" enctype="text/plain">
    <input type="hidden" name='{"title":"csrf: text/plain form","x":"' value='"}'>
    <button>Win a prize</button>
  </form>
  <form id="urlencoded-form" method="POST" action="${target}/tasks">
    <input type="hidden" name="title" value="csrf: urlencoded form">
    <button>Claim it</button>
  </form>
</body></html>`
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end(html)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    // The browser may still hold keep-alive connections open.
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as AddressInfo).port
}

/** From a page of another origin: fetch attempts to create a task with the user's cookies. */
async function crossOriginFetches(page: Page, target: string): Promise<Record<string, string>> {
  return page.evaluate(async (target) => {
    const attempts: Record<string, RequestInit> = {
      'json, credentials include': {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'csrf: fetch json' }),
      },
      'text/plain, credentials include': {
        method: 'POST',
        credentials: 'include',
        body: JSON.stringify({ title: 'csrf: fetch text' }),
      },
      'no-cors, credentials include': {
        method: 'POST',
        mode: 'no-cors',
        credentials: 'include',
        body: JSON.stringify({ title: 'csrf: fetch no-cors' }),
      },
    }
    const outcomes: Record<string, string> = {}
    for (const [name, init] of Object.entries(attempts)) {
      try {
        const response = await fetch(`${target}/tasks`, init)
        outcomes[name] = `answered: ${response.type} ${response.status}`
      } catch (error) {
        outcomes[name] = `refused: ${(error as Error).name}`
      }
    }
    return outcomes
  }, target)
}

// ---------------------------------------------------------------- in Chromium

if (!existsSync(CHROMIUM)) {
  t.skip(`account page in Chromium: ${CHROMIUM} is not installed (apt-get install chromium)`, () => {})
} else {
  t.test('account page in Chromium', async (t) => {
    const { app, origin } = await startLatchkey(t, { JWT_ACCESS_TOKEN_DURATION: '2s' })
    const email = uniqueEmail('browser')
    const name = 'Ada Lovelace'
    const desk = await openDevice(t)
    const page = desk.page

    await t.test('signed out: log-in and sign-up forms, on desktop and at 360 px', async (t) => {
      await page.goto(`${origin}/`)
      await waitSignedOut(page)
      await page.getByRole('heading', { name: 'Sign up' }).waitFor()
      for (const formName of ['Log in', 'Sign up'] as const) {
        const f = form(page, formName)
        t.equal(await f.getByLabel('Email', { exact: true }).count(), 1, `${formName}: Email`)
        t.equal(await f.getByLabel('Password', { exact: true }).count(), 1, `${formName}: Password`)
        t.equal(await f.getByRole('button', { name: formName }).count(), 1, `${formName}: button`)
      }
      t.equal(await form(page, 'Sign up').getByLabel('Display name', { exact: true }).count(), 1)
      await screenshot(page, '01-signed-out-desktop')
      // Keyboard: the first Tab lands on the log-in email field, with a visible focus ring.
      await page.keyboard.press('Tab')
      t.equal(await page.evaluate(() => document.activeElement?.id), 'login-email')
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle)
      t.equal(outline, 'solid', 'focus is visible')
      await screenshot(page, '02-signed-out-focus-360', PHONE)
      t.ok(await fitsWidth(page), 'no horizontal scrolling at 360 px')
      await page.setViewportSize(DESKTOP)
    })

    await t.test('sign up (errors in plain words first)', async (t) => {
      const signUp = form(page, 'Sign up')
      await signUp.getByLabel('Display name', { exact: true }).fill(name)
      await signUp.getByLabel('Email', { exact: true }).fill(email)
      await signUp.getByLabel('Password', { exact: true }).fill('password')
      await signUp.getByRole('button', { name: 'Sign up' }).click()
      await alertWith(page, 'That password is too weak: it is one of the most common passwords.').waitFor()
      await screenshot(page, '03-signup-weak-password')
      // Finish with the keyboard alone: type the password, Enter submits.
      await signUp.getByLabel('Password', { exact: true }).fill('')
      await signUp.getByLabel('Password', { exact: true }).focus()
      await page.keyboard.type(PASSWORD)
      await page.keyboard.press('Enter')
      await waitSignedIn(page, name)
      await page.getByText(`Signed in as ${email}`).waitFor()
      t.equal(await page.getByRole('heading', { name: 'Tasks' }).count(), 1)
      t.equal(await page.getByRole('heading', { name: 'Sessions' }).count(), 1)
      await sessionList(page).getByText('This device', { exact: true }).waitFor()
      t.equal(await page.getByText('No tasks yet.').isVisible(), true)
    })

    await t.test('tasks: add, complete, delete', async (t) => {
      for (const title of ['Buy milk', 'Write report', 'Call the bank']) await addTask(page, title)
      t.same(await taskTitles(page), ['Call the bank', 'Write report', 'Buy milk'], 'newest first')
      const report = taskList(page).getByRole('checkbox', { name: 'Write report' })
      // The access token lives 2 s here: on a loaded machine a call may get 401 first,
      // then the page refreshes once and retries; the answer that counts is the last.
      const settled = (method: string) =>
        page.waitForResponse(
          (r) => r.request().method() === method && r.url().includes('/tasks/') && r.status() !== 401,
        )
      const patched = settled('PATCH')
      await report.check()
      t.equal((await patched).status(), 200)
      t.ok(await report.isChecked())
      const deleted = settled('DELETE')
      await taskList(page).getByRole('button', { name: 'Delete task: Call the bank' }).click()
      t.equal((await deleted).status(), 204)
      await taskList(page).getByRole('checkbox', { name: 'Call the bank' }).waitFor({ state: 'detached' })
      t.same(await taskTitles(page), ['Write report', 'Buy milk'])
      t.equal(await page.evaluate(() => document.activeElement?.tagName), 'INPUT', 'focus stays in the list')
      t.same(await tasksViaApi(app, email), ['Write report', 'Buy milk'], 'the API agrees')
      await screenshot(page, '04-signed-in-desktop')
      await screenshot(page, '05-signed-in-360', PHONE)
      t.ok(await fitsWidth(page), 'no horizontal scrolling at 360 px')
      await page.setViewportSize(DESKTOP)
    })

    await t.test('reload: still signed in; no auth cookie or token is readable by scripts', async (t) => {
      await page.reload()
      await waitSignedIn(page, name)
      await taskList(page).getByRole('checkbox', { name: 'Buy milk' }).waitFor()
      t.ok(await taskList(page).getByRole('checkbox', { name: 'Write report' }).isChecked(), 'completion kept')
      t.notOk(await taskList(page).getByRole('checkbox', { name: 'Buy milk' }).isChecked())
      const readable = await page.evaluate(() => ({
        cookie: document.cookie,
        local: Object.fromEntries(
          Array.from({ length: localStorage.length }, (_, i) => {
            const key = localStorage.key(i) ?? ''
            return [key, localStorage.getItem(key)]
          }),
        ),
        session: sessionStorage.length,
      }))
      t.same(readable, { cookie: '', local: { 'latchkey:signed-in': 'yes' }, session: 0 }, 'storage: the hint alone')
      const cookies = await desk.context.cookies(origin)
      const access = cookies.find((cookie) => cookie.name === 'access_token')
      t.match(access, { httpOnly: true, sameSite: 'Lax', path: '/' })
      // The refresh cookie is scoped to /auth: check it where it applies.
      const refresh = (await desk.context.cookies(`${origin}/auth/refresh`)).find((c) => c.name === 'refresh_token')
      t.match(refresh, { httpOnly: true, sameSite: 'Strict', path: '/auth' })
    })

    await t.test('past the 2-second access token: one shared refresh, work goes on', async (t) => {
      await sleep(PAST_EXPIRY_MS)
      let before = desk.refreshes.length
      // The reload asks for the user, tasks and sessions at once: all three are
      // refused, one refresh serves them all.
      await page.reload({ waitUntil: 'networkidle' })
      await waitSignedIn(page, name)
      await taskList(page).getByRole('checkbox', { name: 'Buy milk' }).waitFor()
      const reloadRefreshes = desk.refreshes.slice(before)
      t.same(
        reloadRefreshes.map((r) => r.status),
        [200],
        'exactly one refresh for three requests',
      )

      await sleep(PAST_EXPIRY_MS)
      before = desk.refreshes.length
      await addTask(page, 'Added after expiry')
      await taskList(page).getByRole('checkbox', { name: 'Added after expiry' }).check()
      await sleep(PAST_EXPIRY_MS)
      const saved = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.ok())
      await taskList(page).getByRole('checkbox', { name: 'Added after expiry' }).uncheck()
      await saved
      t.ok(desk.refreshes.length - before >= 2, 'refreshed on the way')
      t.ok(
        desk.refreshes.slice(before).every((r) => r.status === 200),
        'every refresh succeeded',
      )
      t.equal(await page.getByRole('heading', { name: 'Log in' }).isVisible(), false, 'never signed out')
      t.same(await tasksViaApi(app, email), ['Added after expiry', 'Write report', 'Buy milk'])
    })

    await t.test('two tabs of one session refresh at the same moment; both stay signed in', async (t) => {
      const second = await desk.context.newPage()
      await second.goto(`${origin}/`)
      await waitSignedIn(second, name)
      await sleep(PAST_EXPIRY_MS)
      const before = desk.refreshes.length
      const gate = await holdRefreshes(desk.context, 2, 5_000)
      await Promise.all([addTask(page, 'From tab one'), addTask(second, 'From tab two')])
      await gate.stop()
      const raced = desk.refreshes.slice(before)
      t.equal(gate.held.length, 2, 'both tabs refreshed')
      t.same(
        raced.map((r) => r.status),
        [200, 200],
        'both refreshes succeeded',
      )
      t.not(raced[0]?.page, raced[1]?.page, 'one refresh from each tab')
      const [cookieOne, cookieTwo] = await Promise.all(raced.map((r) => r.cookie))
      t.ok(cookieOne?.includes('refresh_token='), 'the refresh cookie was sent')
      t.equal(cookieOne, cookieTwo, 'both presented the same refresh token')
      // Both keep working on the rotated cookies.
      await sleep(PAST_EXPIRY_MS)
      await second.reload()
      await waitSignedIn(second, name)
      await addTask(page, 'Tab one again')
      await second.getByRole('checkbox', { name: 'From tab one' }).waitFor()
      t.equal(await page.getByRole('heading', { name: 'Log in' }).isVisible(), false)
      t.equal(await second.getByRole('heading', { name: 'Log in' }).isVisible(), false)
      await second.close()
    })

    await t.test("revoke another device's session: it is signed out on its next action", async (t) => {
      const phone = await openDevice(t, { viewport: PHONE, userAgent: IPHONE_UA })
      await phone.page.goto(`${origin}/`)
      await waitSignedOut(phone.page)
      // The email is taken; then a wrong password; then the right one.
      const signUp = form(phone.page, 'Sign up')
      await signUp.getByLabel('Email', { exact: true }).fill(email)
      await signUp.getByLabel('Password', { exact: true }).fill(PASSWORD)
      await signUp.getByRole('button', { name: 'Sign up' }).click()
      await alertWith(phone.page, 'That email is already registered').waitFor()
      await logIn(phone.page, email, 'not my password at all')
      await alertWith(phone.page, 'Wrong email or password.').waitFor()
      await screenshot(phone.page, '06-errors-360')
      await logIn(phone.page, email, PASSWORD)
      await waitSignedIn(phone.page, name)
      await screenshot(phone.page, '07-phone-signed-in-360')

      await page.reload()
      await waitSignedIn(page, name)
      const phoneSession = sessionList(page).getByRole('listitem').filter({ hasText: 'Safari on iPhone' })
      await phoneSession.waitFor()
      const thisSession = sessionList(page).getByRole('listitem').filter({ hasText: 'This device' })
      t.match(await thisSession.textContent(), /Chrome on Linux/)
      t.match(
        await phoneSession.textContent(),
        /IP 127\.0\.0\.1 · password · last used just now/,
        'where, how it signed in, when',
      )
      t.equal(await sessionList(page).getByRole('listitem').count(), 2)
      await screenshot(page, '08-sessions-two-devices')
      await phoneSession.getByRole('button', { name: /^Revoke/ }).click()
      await phoneSession.waitFor({ state: 'detached' })
      t.equal(await sessionList(page).getByRole('listitem').count(), 1)

      await phone.page.getByLabel('New task', { exact: true }).fill('From the revoked phone')
      await phone.page.getByRole('button', { name: 'Add task' }).click()
      await waitSignedOut(phone.page)
      await phone.page.getByText('You have been signed out.').waitFor()
      await screenshot(phone.page, '09-phone-revoked-360')
      t.notOk((await tasksViaApi(app, email)).includes('From the revoked phone'))

      // And "Log out other sessions" does the same to every other device.
      await logIn(phone.page, email, PASSWORD)
      await waitSignedIn(phone.page, name)
      await page.reload()
      await sessionList(page).getByRole('listitem').filter({ hasText: 'Safari on iPhone' }).waitFor()
      await page.getByRole('button', { name: 'Log out other sessions' }).click()
      await sessionList(page)
        .getByRole('listitem')
        .filter({ hasText: 'Safari on iPhone' })
        .waitFor({ state: 'detached' })
      await phone.page.reload()
      await waitSignedOut(phone.page)
      await waitSignedIn(page, name)
      t.same(phone.problems, [], 'no script error or CSP refusal on the phone')
    })

    await t.test('log out: this tab and the other tab of the session', async (t) => {
      const second = await desk.context.newPage()
      await second.goto(`${origin}/`)
      await waitSignedIn(second, name)
      await page.getByRole('button', { name: 'Log out', exact: true }).click()
      await waitSignedOut(page)
      await page.getByText('You are logged out.').waitFor()
      await screenshot(page, '11-logged-out')
      const left = (await desk.context.cookies(origin)).map((cookie) => cookie.name)
      t.notOk(left.includes('access_token') || left.includes('refresh_token'), 'auth cookies cleared')
      // Its next action finds no session: the refresh fails, the log-in form shows.
      await second.getByRole('checkbox', { name: 'Buy milk' }).click()
      await waitSignedOut(second)
      await second.getByText('You have been signed out.').waitFor()
      await second.close()
    })

    await t.test('delete the account (asks for the password first)', async (t) => {
      await logIn(page, email, PASSWORD)
      await waitSignedIn(page, name)
      await page.getByRole('button', { name: 'Delete account', exact: true }).click()
      const dialog = page.getByRole('dialog', { name: 'Delete your account?' })
      await dialog.waitFor()
      await dialog.getByLabel('Password', { exact: true }).fill('wrong password here')
      await dialog.getByRole('button', { name: 'Delete account' }).click()
      await alertWith(page, 'That password is not right.').waitFor()
      await screenshot(page, '12-delete-wrong-password')
      await screenshot(page, '13-delete-dialog-360', PHONE)
      await page.setViewportSize(DESKTOP)
      await dialog.getByLabel('Password', { exact: true }).fill(PASSWORD)
      await dialog.getByRole('button', { name: 'Delete account' }).click()
      await waitSignedOut(page)
      await page.getByText('Your account has been deleted.').waitFor()
      await screenshot(page, '14-account-deleted')
      const again = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } })
      t.equal(again.statusCode, 401, 'the account is gone')
      t.equal(again.json().code, 'INVALID_CREDENTIALS')
      t.same(desk.problems, [], 'no script error or CSP refusal')
    })
  })

  t.test('another site cannot create a task with the cookies', async (t) => {
    // Default 15-minute access tokens, so the cookies are surely there to abuse.
    const { app, origin } = await startLatchkey(t)
    const email = uniqueEmail('csrf')
    const { context, page, problems } = await openDevice(t)
    await page.goto(`${origin}/`)
    const signUp = form(page, 'Sign up')
    await signUp.getByLabel('Email', { exact: true }).fill(email)
    await signUp.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await signUp.getByRole('button', { name: 'Sign up' }).click()
    await page.getByRole('heading', { name: 'Your account' }).waitFor()
    await addTask(page, 'My own task')

    const port = await startOtherSite(t, origin)
    const tab = await context.newPage()
    const seen: Array<{ from: string; status: number; withCookie: boolean }> = []
    tab.on('response', async (response) => {
      if (response.request().method() !== 'POST' || !response.url().startsWith(`${origin}/tasks`)) return
      const cookie = (await response.request().allHeaders()).cookie ?? ''
      seen.push({
        from: new URL(tab.url()).host,
        status: response.status(),
        withCookie: cookie.includes('access_token'),
      })
    })
    // 127.0.0.1 is another site than localhost: the SameSite=Lax cookie stays
    // home. localhost on another port is the same site but another origin: the
    // cookie goes along, and the Origin check refuses the request.
    const sites = [
      { other: `http://127.0.0.1:${port}`, status: 401, withCookie: false },
      { other: `http://localhost:${port}`, status: 403, withCookie: true },
    ]
    for (const { other, status, withCookie } of sites) {
      await tab.goto(`${other}/`)
      const fetches = await crossOriginFetches(tab, origin)
      t.match(fetches['json, credentials include'], /^refused/, `${other}: JSON fetch stopped by CORS`)
      t.match(fetches['text/plain, credentials include'], /^refused/, `${other}: text fetch gets no readable answer`)
      t.comment(`${other} fetch: ${JSON.stringify(fetches)}`)
      for (const formId of ['text-form', 'urlencoded-form']) {
        await tab.goto(`${other}/`)
        const answer = tab.waitForResponse((r) => r.url() === `${origin}/tasks`)
        await tab.locator(`#${formId} button`).click()
        const response = await answer
        t.equal(response.status(), status, `${other} ${formId}: refused`)
        t.equal(
          ((await response.request().allHeaders()).cookie ?? '').includes('access_token'),
          withCookie,
          `${other} ${formId}: access cookie ${withCookie ? 'sent' : 'not sent'}`,
        )
        await tab.waitForLoadState()
      }
      if (status === 403) await tab.getByText('CSRF_REJECTED').waitFor()
    }
    await screenshot(tab, '16-cross-site-form-refused')
    t.comment(`POSTs that reached latchkey: ${JSON.stringify(seen)}`)
    t.notOk(
      seen.some((s) => s.status < 400),
      'no cross-origin POST succeeded',
    )
    t.same(await tasksViaApi(app, email), ['My own task'], 'no task was created')
    await page.reload()
    await taskList(page).getByRole('checkbox', { name: 'My own task' }).waitFor()
    t.equal(await taskList(page).getByRole('checkbox').count(), 1)
    t.same(problems, [])
  })

  t.test('too many log-in attempts: the wait, in plain words', async (t) => {
    const { app, origin } = await startLatchkey(t, { AUTH_RATE_LIMIT_MAX: '2' })
    const email = uniqueEmail('throttled')
    const created = await app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: PASSWORD } })
    t.equal(created.statusCode, 201)
    const { page, problems } = await openDevice(t, { viewport: PHONE })
    await page.goto(`${origin}/`)
    await waitSignedOut(page)
    for (let attempt = 0; attempt < 2; attempt++) {
      await logIn(page, email, 'wrong password')
      await alertWith(page, 'Wrong email or password.').waitFor()
    }
    await logIn(page, email, PASSWORD)
    await alertWith(page, /^Too many attempts: try again in 15 minutes\.$/).waitFor()
    await screenshot(page, '15-rate-limited-360')
    t.same(problems, [])
  })
}
