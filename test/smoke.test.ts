// The app starts, serves a signed-up user, and registers exactly the routes of
// contract section 3 (../shared/API.md): none missing, nothing unexpected.
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
  t.same(Object.keys(account.cookies).sort(), ['access_token', 'refresh_token'])
})

/** Contract section 3, one entry per method and path. */
const CONTRACT_ROUTES: Array<[method: string, url: string]> = [
  ['POST', '/auth/signup'],
  ['POST', '/auth/login'],
  ['POST', '/auth/refresh'],
  ['POST', '/auth/logout'],
  ['GET', '/auth/sessions'],
  ['DELETE', '/auth/sessions/:id'],
  ['POST', '/auth/password-confirmation'],
  ['POST', '/auth/password-confirmation/refresh'],
  ['GET', '/users/me'],
  ['PATCH', '/users/me'],
  ['PUT', '/users/me/password'],
  ['DELETE', '/users/me'],
  ...['lists', 'tasks', 'secrets'].flatMap(
    (resource): Array<[string, string]> => [
      ['GET', `/${resource}`],
      ['POST', `/${resource}`],
      ['GET', `/${resource}/:id`],
      ['PATCH', `/${resource}/:id`],
      ['DELETE', `/${resource}/:id`],
    ],
  ),
  ['GET', '/health'],
  ['GET', '/ready'],
  ['GET', '/docs'],
  ['GET', '/'],
  ['GET', '/openapi.json'],
]

/** Routes outside section 3 that are expected, each with why it exists. */
const SUPPORTING_ROUTES: Array<{ method: string; url: RegExp; why: string }> = [
  { method: 'OPTIONS', url: /^\*$/, why: 'CORS preflight' },
  { method: 'GET', url: /^\/docs\/(static\/[\w.-]+|json|yaml|\*)?$/, why: 'Swagger UI assets of GET /docs' },
  { method: 'GET', url: /^\/(index\.html|account\.js|account\.css)$/, why: 'account page files of GET /' },
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

t.test('the routes of contract section 3 are registered, and nothing else answers', async (t) => {
  const { app } = await buildTestApp(t)
  for (const [method, url] of CONTRACT_ROUTES) {
    t.ok(app.hasRoute({ method, url }), `${method} ${url} is registered`)
  }

  const contract = new Set(CONTRACT_ROUTES.map(([method, url]) => `${method} ${url}`))
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
