// What the account page's browser tests share (test/browser/account-*.test.ts):
// the real app on a real port, reached by headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core) at localhost or at another host
// name mapped to 127.0.0.1; every console message and failed request of the
// page, recorded; the development outbox (<DATA_DIR>/outbox/*.eml) read as a
// person would read their mail.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { simpleParser } from 'mailparser'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import tap from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { login, PASSWORD, sleep, TEST_ENV, tempDir, testDatabaseEnv } from '../helper.js'

export const CHROMIUM = '/usr/bin/chromium'
export const SCREENSHOTS = path.join(import.meta.dirname, '..', '..', 'test-output', 'screenshots')
export const DESKTOP = { width: 1280, height: 800 }
export const PHONE = { width: 360, height: 780 }
export { PASSWORD }

/** What the helpers need of a tap test. */
export interface Test {
  teardown(fn: () => unknown): void
}

// The page's globals, for the few lines evaluated in the browser (the project's
// TypeScript setup has no DOM library).
declare const document: { documentElement: { scrollWidth: number } }
declare const window: { innerWidth: number }
declare function requestAnimationFrame(callback: () => void): number

/**
 * Chromium's notes that Helmet's Cross-Origin-Opener-Policy and
 * Origin-Agent-Cluster headers do not apply to a plain-http origin other than
 * localhost: about every page of the server alike (test/browser/docs.test.ts
 * ignores the first too), and not failed requests.
 */
export const PLAIN_HTTP_NOTES =
  /Cross-Origin-Opener-Policy header has been ignored|requested an origin-keyed agent cluster using the Origin-Agent-Cluster header/

export interface Latchkey {
  app: FastifyInstance
  origin: string
  dir: string
}

/** A port free on 127.0.0.1 right now, so PUBLIC_URL can name it before the app listens. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * The real app on a real port; the browser reaches it as `http://<host>:<port>`
 * (localhost by default). No SMTP_URL: mails go to <DATA_DIR>/outbox, and their
 * links to PUBLIC_URL, the page as the browser reaches it.
 */
export async function startLatchkey(
  t: Test,
  options: { host?: string; env?: Record<string, string> } = {},
): Promise<Latchkey> {
  const host = options.host ?? 'localhost'
  const dir = tempDir(t)
  const databaseEnv = await testDatabaseEnv(t)
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const origin = `http://${host}:${port}`
    const env = {
      ...TEST_ENV,
      DATA_DIR: dir,
      PUBLIC_URL: `${origin}/`,
      MAIL_RATE_LIMIT_MAX: '1000',
      ...databaseEnv,
      ...options.env,
    }
    const app = await buildApp(loadConfig({ env, cwd: dir }))
    try {
      await app.listen({ port, host: '127.0.0.1' })
    } catch (error) {
      await app.close()
      // Another process took the port between freePort() and here: try another.
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 3) continue
      throw error
    }
    t.teardown(() => app.close())
    return { app, origin, dir }
  }
}

export interface Device {
  context: BrowserContext
  page: Page
  /** Uncaught exceptions, CSP refusals and console errors or warnings, in any page of the device. */
  problems: string[]
  /** Every console message at level error or warning (the refused requests the browser logs among them). */
  consoleErrors: string[]
  /** Every request of any page, as `METHOD url`. */
  requests: string[]
  /** Requests that got no answer at all. */
  failed: string[]
}

const browsers = new Map<string, Promise<Browser>>()

/**
 * One headless Chromium per host mapping for the whole test file (closed at its
 * end): each device is a fresh context of it, with its own cookies and storage,
 * as a separate profile would be, at a fraction of the start-up time.
 */
function browserFor(host: string): Promise<Browser> {
  let browser = browsers.get(host)
  if (!browser) {
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ]
    if (host !== 'localhost') args.push(`--host-resolver-rules=MAP ${host} 127.0.0.1`)
    browser = chromium.launch({ executablePath: CHROMIUM, headless: true, args })
    browsers.set(host, browser)
    const launched = browser
    tap.teardown(async () => (await launched).close())
  }
  return browser
}

/** One device: a fresh browser context, with its own cookie jar and storage. */
export async function openDevice(
  t: Test,
  options: { viewport?: { width: number; height: number }; host?: string; ignore?: RegExp } = {},
): Promise<Device> {
  const browser = await browserFor(options.host ?? 'localhost')
  const context = await browser.newContext({ viewport: options.viewport ?? DESKTOP })
  t.teardown(() => context.close())
  context.setDefaultTimeout(10_000)
  const page = await context.newPage()
  const device: Device = { context, page, problems: [], consoleErrors: [], requests: [], failed: [] }
  const watch = (watched: Page) => {
    watched.on('pageerror', (error) => device.problems.push(`page error: ${error.message}`))
    watched.on('console', (message) => {
      const text = message.text()
      if (options.ignore?.test(text)) return
      if (message.type() === 'error' || message.type() === 'warning') {
        device.consoleErrors.push(`${message.type()}: ${text}`)
      }
      if (/Content Security Policy|Refused to/i.test(text)) device.problems.push(text)
    })
    watched.on('request', (request) => device.requests.push(`${request.method()} ${request.url()}`))
    watched.on('requestfailed', (request) => device.failed.push(`${request.url()} ${request.failure()?.errorText}`))
  }
  watch(page)
  context.on('page', watch)
  return device
}

export async function screenshot(page: Page, name: string, viewport?: { width: number; height: number }) {
  mkdirSync(SCREENSHOTS, { recursive: true })
  if (viewport) await page.setViewportSize(viewport)
  // Two frames, so the picture shows the layout at this size (not one half-painted).
  await page.evaluate(
    () => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))),
  )
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

/** No horizontal scrolling: everything fits the viewport's width. */
export async function fitsWidth(page: Page): Promise<boolean> {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)
}

export const form = (page: Page, name: string) => page.getByRole('form', { name, exact: true })
export const alertWith = (page: Page, text: string | RegExp) => page.getByRole('alert').filter({ hasText: text })
export const statusWith = (page: Page, text: string | RegExp) => page.getByRole('status').filter({ hasText: text })
export const taskList = (page: Page) => page.getByRole('list', { name: 'Tasks', exact: true })
export const listList = (page: Page) => page.getByRole('list', { name: 'Lists', exact: true })
export const secretList = (page: Page) => page.getByRole('list', { name: 'Secret messages', exact: true })
export const sessionList = (page: Page) => page.getByRole('list', { name: 'Sessions', exact: true })

export async function waitSignedOut(page: Page): Promise<void> {
  await page.getByRole('heading', { name: 'Log in' }).waitFor()
}

/** Signed in as `name`, with everything loaded (the view is busy until then). */
export async function waitSignedIn(page: Page, name: string): Promise<void> {
  await page.getByRole('heading', { name: `Hello, ${name}` }).waitFor()
  await page.locator('#signed-in:not([aria-busy])').waitFor()
}

export async function signUp(page: Page, email: string, name: string, password = PASSWORD): Promise<void> {
  const signUpForm = form(page, 'Sign up')
  await signUpForm.getByLabel('Display name', { exact: true }).fill(name)
  await signUpForm.getByLabel('Email', { exact: true }).fill(email)
  await signUpForm.getByLabel('Password', { exact: true }).fill(password)
  await signUpForm.getByRole('button', { name: 'Sign up' }).click()
}

export async function logIn(page: Page, email: string, password = PASSWORD): Promise<void> {
  const logInForm = form(page, 'Log in')
  await logInForm.getByLabel('Email', { exact: true }).fill(email)
  await logInForm.getByLabel('Password', { exact: true }).fill(password)
  await logInForm.getByRole('button', { name: 'Log in' }).click()
}

/** What the API itself answers to GET `url` for the account (a separate, short session). */
export async function viaApi<T>(app: FastifyInstance, email: string, url: string, password = PASSWORD): Promise<T> {
  const account = await login(app, email, password)
  const response = await app.inject({ url, headers: account.bearer })
  await app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer })
  if (response.statusCode !== 200) throw new Error(`GET ${url}: ${response.statusCode} ${response.body}`)
  return response.json() as T
}

// ---------------------------------------------------------------- the outbox

export interface Mail {
  file: string
  to: string
  subject: string
  text: string
  /** The link in the mail: its URL, and the action and token of its fragment. */
  link?: { url: string; action: string; token: string }
}

const LINK = /(https?:\/\/[^\s"<>]+#action=([a-z-]+)&token=([A-Za-z0-9_-]+))/

/** Every mail in <dir>/outbox, oldest first (the file names start with the time written). */
export async function outbox(dir: string): Promise<Mail[]> {
  const folder = path.join(dir, 'outbox')
  let files: string[]
  try {
    files = readdirSync(folder).filter((name) => name.endsWith('.eml'))
  } catch {
    return []
  }
  const mails: Mail[] = []
  for (const name of files.sort()) {
    const parsed = await simpleParser(readFileSync(path.join(folder, name)))
    const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to
    const text = parsed.text ?? ''
    const match = LINK.exec(text)
    mails.push({
      file: name,
      to: to?.value[0]?.address ?? '',
      subject: parsed.subject ?? '',
      text,
      ...(match ? { link: { url: match[1] as string, action: match[2] as string, token: match[3] as string } } : {}),
    })
  }
  return mails
}

/** Waits for the `nth` (1-based) mail to `to` whose subject matches, and answers it. */
export async function waitForMail(dir: string, to: string, subject: RegExp, nth = 1): Promise<Mail> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const mails = (await outbox(dir)).filter((mail) => mail.to === to && subject.test(mail.subject))
    const mail = mails[nth - 1]
    if (mail) return mail
    if (Date.now() > deadline) throw new Error(`no mail ${nth} to ${to} matching ${subject} in ${dir}/outbox`)
    await sleep(50)
  }
}

/** The link of a mail, or fails. */
export function linkOf(mail: Mail): { url: string; action: string; token: string } {
  if (!mail.link) throw new Error(`no link in the mail "${mail.subject}"`)
  return mail.link
}
