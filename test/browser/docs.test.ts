// /docs in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) against the real app on a real port: it says latchkey,
// loads and links /openapi.json, renders every operation under its
// operationId, runs "Try it out" against the server the document names, and
// raises no CSP refusal or script error in the console. Screenshots go to
// test-output/screenshots/.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium } from 'playwright-core'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { TEST_ENV, tempDir, testDatabaseEnv } from '../helper.js'

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOTS = path.join(import.meta.dirname, '..', '..', 'test-output', 'screenshots')

/** Chromium's note that Helmet's Cross-Origin-Opener-Policy does not apply to a plain-http origin
 *  (one that is not localhost): about every page of the server alike, not about /docs. */
const COOP_IGNORED = /Cross-Origin-Opener-Policy header has been ignored/

const cases: Array<{ name: string; host: string; env: Record<string, string>; ignore?: RegExp }> = [
  { name: 'localhost', host: 'localhost', env: {} },
  // The first try on a VM: plain http under another name, for development.
  {
    name: 'another host over plain http',
    host: 'latchkey.test',
    env: { COOKIE_SECURE: 'false' },
    ignore: COOP_IGNORED,
  },
]

for (const { name, host, env, ignore } of cases) {
  t.test(`/docs in Chromium (${name})`, async (t) => {
    const dir = tempDir(t)
    const config = loadConfig({ env: { ...TEST_ENV, DATA_DIR: dir, ...(await testDatabaseEnv(t)), ...env }, cwd: dir })
    const app = await buildApp(config)
    t.teardown(() => app.close())
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    const origin = `http://${host}:${port}`

    const userDataDir = mkdtempSync(path.join(tmpdir(), 'latchkey-chromium-'))
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--host-resolver-rules=MAP ${host} 127.0.0.1`,
      ],
      viewport: { width: 1280, height: 800 },
    })
    t.teardown(async () => {
      await context.close()
      rmSync(userDataDir, { recursive: true, force: true })
    })
    context.setDefaultTimeout(15_000)
    const page = context.pages()[0] ?? (await context.newPage())
    const problems: string[] = []
    const requested: string[] = []
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    page.on('console', (message) => {
      if (ignore?.test(message.text())) return
      if (message.type() === 'error' || /Content Security Policy|Refused to/i.test(message.text())) {
        problems.push(`console ${message.type()}: ${message.text()}`)
      }
    })
    page.on('requestfailed', (request) => problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`))
    page.on('request', (request) => requested.push(request.url()))

    await page.goto(`${origin}/docs`)
    t.equal(await page.title(), 'latchkey API reference')
    await page.locator('#operations-auth-signUp').waitFor()
    t.match(await page.locator('.info .title').innerText(), /^latchkey/)
    t.ok(await page.locator('.info a[href="/openapi.json"]').first().isVisible(), 'links /openapi.json')
    t.equal(await page.locator('.topbar').count(), 0, 'no Swagger top bar')
    t.notMatch(await page.locator('body').innerText(), /swagger|fastify/i, 'says latchkey, not Swagger or Fastify')
    for (const id of ['logIn', 'refresh', 'logOut']) {
      t.equal(await page.locator(`#operations-auth-${id}`).count(), 1, `${id} is listed`)
    }
    t.equal(await page.locator('#operations-tasks-listTasks').count(), 1, 'listTasks is listed')

    // Try it out: GET /health from the page, against the server the document names.
    const health = page.locator('#operations-health-getHealth')
    await health.locator('.opblock-summary').click()
    await health.getByRole('button', { name: 'Try it out' }).click()
    const answered = page.waitForResponse((response) => response.url() === `${origin}/health`)
    await health.getByRole('button', { name: 'Execute' }).click()
    t.equal((await answered).status(), 200, 'Try it out reaches the server')
    await health.locator('.live-responses-table .response-col_status').first().waitFor()

    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: path.join(SCREENSHOTS, `docs-${host}.png`), fullPage: false })

    t.same(problems, [], 'no console error, CSP refusal or failed request')
    t.same(
      requested.filter((url) => !url.startsWith(`${origin}/`)),
      [],
      'nothing is loaded from another origin',
    )
    t.ok(requested.includes(`${origin}/openapi.json`), 'the page loads /openapi.json')
    t.notOk(requested.includes(`${origin}/docs/json`), 'and not a second copy of it')
  })
}
