// The app starts, serves a signed-up user, and registers the routes of the
// contract (../shared/API.md, read from its tables): every route of section 3,
// and nothing that neither section 3 nor section 7 names.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildTestApp, signup } from './helper.js'

t.test('smoke', async (t) => {
  const { app } = await buildTestApp(t)
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200, health.body)
  const account = await signup(app)
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(me.statusCode, 200, me.body)
  t.same(Object.keys(account.cookies).sort(), ['access_token', 'device_token', 'refresh_token'])
})

/** The contract, ../shared/API.md, beside the repository (as CI lays it out). */
const API_MD = readFileSync(path.join(import.meta.dirname, '..', '..', 'shared', 'API.md'), 'utf8')

/** The routes of one section's table: `| GET, POST /lists | ...` gives GET /lists and POST /lists. */
function contractRoutes(section: string): Array<[method: string, url: string]> {
  const start = API_MD.indexOf(`\n## ${section}. `)
  const end = API_MD.indexOf('\n## ', start + 1)
  if (start === -1) throw new Error(`API.md has no section ${section}`)
  return API_MD.slice(start, end === -1 ? undefined : end)
    .split('\n')
    .flatMap((line) => {
      const match = /^\| ((?:GET|POST|PUT|PATCH|DELETE)(?:, (?:GET|POST|PUT|PATCH|DELETE))*) (\/\S*) \|/.exec(line)
      if (!match) return []
      const [, methods = '', url = ''] = match
      return methods.split(', ').map((method): [string, string] => [method, url])
    })
}

/** Section 3: every route must be registered. */
const CONTRACT_ROUTES = contractRoutes('3')
/**
 * Section 7 (added routes): allowed; each is required once its issue has landed,
 * which the tests of that feature check. Passkey routes live under the prefixes it names.
 */
const ADDED_ROUTES = contractRoutes('7')

/** Routes outside the tables that are expected, each with why it exists. */
const SUPPORTING_ROUTES: Array<{ method: string; url: RegExp; why: string }> = [
  { method: 'OPTIONS', url: /^\*$/, why: 'CORS preflight' },
  {
    method: 'GET',
    url: /^\/docs\/(static\/[\w./-]+|json|yaml|\*)?$/,
    why: 'the API reference of GET /docs: its assets and copies of the document',
  },
  { method: 'GET', url: /^\/(index\.html|account\.js|account\.css)$/, why: 'account page files of GET /' },
  { method: 'GET', url: /^\/vendor\/(simplewebauthn-browser|uqr)\.js$/, why: 'libraries of the account page' },
  ...['GET', 'POST', 'PATCH', 'DELETE'].flatMap((method) => [
    { method, url: /^\/auth\/passkeys(\/.*)?$/, why: 'passkey routes (API.md section 7)' },
    { method, url: /^\/users\/me\/passkeys(\/.*)?$/, why: 'passkey routes (API.md section 7)' },
  ]),
  {
    method: 'POST',
    url: /^\/users\/me\/mfa\/recovery-codes$/,
    why: 'new recovery codes (the second-factor issue asks for it; section 7 is silent)',
  },
]

/** Every method and path the router holds, from `printRoutes({ commonPrefix: false })`. */
function registeredRoutes(t: Test, app: FastifyInstance): Array<{ method: string; url: string }> {
  const routes: Array<{ method: string; url: string }> = []
  const parents: string[] = []
  // Each line is one route node: its indentation (4 characters a level), its path
  // relative to its parent node, and its methods.
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    if (line === '') continue
    const match = /^((?:│ {3}| {4})*)[├└]── (\S+) \(([A-Z, ]+)\)$/.exec(line)
    if (!match) {
      t.fail(`unparsed route line: ${line}`)
      continue
    }
    const [, indent = '', segment = '', methods = ''] = match
    const depth = indent.length / 4
    parents.length = depth
    const url = (parents[depth - 1] ?? '') + segment
    parents.push(url)
    for (const method of methods.split(', ')) routes.push({ method, url })
  }
  return routes
}

t.test('the routes of contract section 3 are registered, and nothing outside the contract answers', async (t) => {
  const { app } = await buildTestApp(t)
  t.ok(CONTRACT_ROUTES.length >= 30, `section 3 parsed (${CONTRACT_ROUTES.length} routes)`)
  t.ok(ADDED_ROUTES.length >= 10, `section 7 parsed (${ADDED_ROUTES.length} routes)`)
  for (const [method, url] of CONTRACT_ROUTES) {
    t.ok(app.hasRoute({ method, url }), `${method} ${url} is registered`)
  }

  const contract = new Set([...CONTRACT_ROUTES, ...ADDED_ROUTES].map(([method, url]) => `${method} ${url}`))
  const registered = registeredRoutes(t, app)
  t.ok(registered.length > CONTRACT_ROUTES.length, `the route table parsed (${registered.length} routes)`)
  for (const { method, url } of registered) {
    // Fastify answers HEAD for every GET, and a folder's root route also with a trailing slash.
    const asGet = method === 'HEAD' ? 'GET' : method
    const base = url.length > 1 ? url.replace(/\/$/, '') : url
    const expected =
      contract.has(`${asGet} ${base}`) ||
      SUPPORTING_ROUTES.some((route) => route.method === asGet && route.url.test(url))
    t.ok(expected, `${method} ${url} is in the contract or supports a route of it`)
  }
  for (const [method, url] of CONTRACT_ROUTES) {
    t.ok(
      registered.some((route) => route.method === method && route.url === url),
      `${method} ${url} appears in the route table`,
    )
  }
})
