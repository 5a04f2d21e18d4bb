// The OpenAPI document describes every route of the contract in a shape that
// client generators turn into a clean client (named operations and types, the
// error statuses, headers and optional fields as they are), and /docs serves it.
import { Type } from '@sinclair/typebox'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import t from 'tap'
import { derivedOperationId, OPERATION_IDS } from '../plugins/openapi.js'
import latchkey, { serverOptions } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { ERROR_CODES } from '../src/errors.js'
import { ACCESS_SECURITY, errorResponses } from '../src/schemas.js'
import { buildTestApp, signup, TEST_ENV, tempDir } from './helper.js'

const CONTRACT: Array<[string, string, 'public' | 'access']> = [
  ['post', '/auth/signup', 'public'],
  ['post', '/auth/login', 'public'],
  ['post', '/auth/refresh', 'public'],
  ['post', '/auth/logout', 'public'],
  ['get', '/auth/sessions', 'access'],
  ['delete', '/auth/sessions/{id}', 'access'],
  ['post', '/auth/password-confirmation', 'access'],
  ['post', '/auth/password-confirmation/refresh', 'access'],
  ['get', '/users/me', 'access'],
  ['patch', '/users/me', 'access'],
  ['put', '/users/me/password', 'access'],
  ['delete', '/users/me', 'access'],
  ['get', '/lists', 'access'],
  ['post', '/lists', 'access'],
  ['get', '/lists/{id}', 'access'],
  ['patch', '/lists/{id}', 'access'],
  ['delete', '/lists/{id}', 'access'],
  ['get', '/tasks', 'access'],
  ['post', '/tasks', 'access'],
  ['get', '/tasks/{id}', 'access'],
  ['patch', '/tasks/{id}', 'access'],
  ['delete', '/tasks/{id}', 'access'],
  ['get', '/secrets', 'access'],
  ['post', '/secrets', 'access'],
  ['get', '/secrets/{id}', 'access'],
  ['patch', '/secrets/{id}', 'access'],
  ['delete', '/secrets/{id}', 'access'],
  ['get', '/health', 'public'],
  ['get', '/ready', 'public'],
]

type Schema = Record<string, unknown> & {
  $ref?: string
  title?: string
  properties?: Record<string, Schema>
  required?: string[]
}

interface Response {
  description: string
  headers?: Record<string, { description?: string; schema: Schema }>
  content?: Record<string, { schema: Schema }>
}

interface Operation {
  operationId?: string
  summary?: string
  tags?: string[]
  security?: Array<Record<string, string[]>>
  parameters?: Array<{ in: string; name: string; required?: boolean; schema: Schema }>
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> }
  responses: Record<string, Response>
}

interface Document {
  openapi: string
  info: { title: string; description: string }
  servers?: Array<{ url: string }>
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, unknown> }
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch']

function operationsOf(document: Document): Array<{ method: string; path: string; name: string; operation: Operation }> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({
      method,
      path,
      name: `${method.toUpperCase()} ${path}`,
      operation: item[method] as Operation,
    })),
  )
}

/** The schema a `$ref` names, or the schema itself. */
function resolve(document: Document, schema: Schema | undefined): Schema | undefined {
  const ref = schema?.$ref
  return ref ? document.components.schemas[ref.replace('#/components/schemas/', '')] : schema
}

async function documentOf(app: FastifyInstance): Promise<Document> {
  const response = await app.inject('/openapi.json')
  if (response.statusCode !== 200) throw new Error(`/openapi.json: ${response.statusCode}`)
  return response.json()
}

t.test('every contract route is documented', async (t) => {
  const { app } = await buildTestApp(t)
  const document = await documentOf(app)
  t.match(document.openapi, /^3\./)
  t.same(Object.keys(document.components.securitySchemes).sort(), [
    'bearerAuth',
    'cookieAuth',
    'passwordConfirmationCookie',
    'passwordConfirmationHeader',
    'refreshCookie',
  ])
  for (const code of Object.keys(ERROR_CODES)) t.match(document.info.description, code, `error code ${code} listed`)
  t.match(document.info.description, '/openapi.json', 'the description names the document URL')

  for (const [method, path, auth] of CONTRACT) {
    const operation = document.paths[path]?.[method]
    const name = `${method.toUpperCase()} ${path}`
    if (!operation) {
      t.fail(`${name} is missing`)
      continue
    }
    t.ok(operation.summary, `${name}: summary`)
    t.ok(operation.tags?.length, `${name}: tags`)
    const statuses = Object.keys(operation.responses)
    t.ok(
      statuses.some((status) => status.startsWith('2')),
      `${name}: a success response`,
    )
    if (auth === 'access') {
      t.ok(statuses.includes('401'), `${name}: documents 401`)
      const schemes = (operation.security ?? []).flatMap((requirement) => Object.keys(requirement))
      t.ok(schemes.includes('bearerAuth') && schemes.includes('cookieAuth'), `${name}: bearer and cookie security`)
    }
    if (['post', 'patch', 'put'].includes(method) && !path.includes('refresh') && path !== '/auth/logout') {
      t.ok(operation.requestBody?.content['application/json'], `${name}: request body schema`)
    }
  }
  t.notOk(document.paths['/lists/'], 'no trailing-slash duplicates')
  t.same(document.servers, [{ url: '/', description: 'The server that serves this document' }], 'a servers entry')
})

t.test('every operation has a readable, unique operationId', async (t) => {
  const { app } = await buildTestApp(t)
  const seen = new Map<string, string>()
  for (const { method, path, name, operation } of operationsOf(await documentOf(app))) {
    const id = operation.operationId
    t.match(id, /^[a-z][A-Za-z0-9]*$/, `${name}: camelCase operationId`)
    // Named in OPERATION_IDS, or by the route's own schema: never the mechanical fallback.
    const named = OPERATION_IDS[name] === id || (!(name in OPERATION_IDS) && id !== derivedOperationId(method, path))
    t.ok(named, `${name}: operationId "${id}" is chosen (add "${name}" to OPERATION_IDS in plugins/openapi.ts)`)
    t.notOk(seen.has(id ?? ''), `${name}: operationId "${id}" is unique (also ${seen.get(id ?? '')})`)
    seen.set(id ?? '', name)
  }
  t.equal(OPERATION_IDS['POST /auth/signup'], 'signUp')
  t.equal(OPERATION_IDS['GET /tasks'], 'listTasks')
  t.equal(derivedOperationId('get', '/tasks/{id}'), 'getTasksById', 'the fallback is readable too')
  t.equal(derivedOperationId('get', '/.well-known/jwks.json'), 'getWellKnownJwksJson')
})

t.test('types are named components, referenced with $ref', async (t) => {
  const { app } = await buildTestApp(t)
  const document = await documentOf(app)
  const text = JSON.stringify(document)
  const { schemas } = document.components
  for (const name of ['User', 'Task', 'List', 'Secret', 'Session', 'Error', 'SignedIn', 'TaskPage', 'ListPage']) {
    t.ok(schemas[name], `component ${name}`)
  }
  for (const [name, schema] of Object.entries(schemas)) {
    t.equal(schema.title, name, `component ${name} is named by its own title (no two schemas share one)`)
  }
  // Every reference resolves.
  for (const [, ref] of text.matchAll(/"\$ref":"([^"]+)"/g)) {
    t.ok(ref?.startsWith('#/components/schemas/') && schemas[ref.slice(21)], `${ref} resolves`)
  }
  // The error codes are listed once, in Error, and every error answer refers to it.
  const enumOfCodes = `"enum":${JSON.stringify(Object.keys(ERROR_CODES))}`
  t.equal(text.split(enumOfCodes).length - 1, 1, 'the error-code enum appears once')
  t.same(schemas.Error?.properties?.code?.enum, Object.keys(ERROR_CODES))
  const users = text.split('"$ref":"#/components/schemas/User"').length - 1
  t.ok(users >= 2, `User is referenced (${users} times), not repeated`)
  for (const { name, operation } of operationsOf(document)) {
    for (const [status, response] of Object.entries(operation.responses)) {
      if (Number(status) < 400) continue
      t.same(
        response.content?.['application/json']?.schema,
        { $ref: '#/components/schemas/Error' },
        `${name} ${status}`,
      )
    }
  }
})

t.test('error statuses, descriptions and headers', async (t) => {
  const { app } = await buildTestApp(t)
  const document = await documentOf(app)
  t.notMatch(JSON.stringify(document), 'Default Response', 'every response has a real description')
  for (const { method, name, operation } of operationsOf(document)) {
    const { responses } = operation
    for (const status of ['429', '500', '503']) t.ok(responses[status], `${name}: documents ${status}`)
    if (operation.requestBody || operation.parameters?.length) t.ok(responses['400'], `${name}: documents 400`)
    if (operation.requestBody) t.ok(responses['413'] && responses['415'], `${name}: documents 413 and 415`)
    if (method !== 'get') t.ok(responses['507'], `${name}: documents 507`)
    if ((operation.security ?? []).some((requirement) => Object.keys(requirement).length > 0)) {
      t.ok(responses['401'], `${name}: documents 401`)
    }
    for (const [status, response] of Object.entries(responses)) {
      t.ok(response.description && response.description !== 'Default Response', `${name} ${status}: described`)
      if (['429', '503', '507'].includes(status))
        t.ok(response.headers?.['Retry-After'], `${name} ${status}: Retry-After`)
      if (status === '401') t.ok(response.headers?.['WWW-Authenticate'], `${name} 401: WWW-Authenticate`)
    }
  }
  const setCookie = (path: string, status: string) =>
    document.paths[path]?.post?.responses[status]?.headers?.['Set-Cookie']?.description ?? ''
  t.match(setCookie('/auth/signup', '201'), /access_token.*refresh_token/)
  t.match(setCookie('/auth/login', '200'), /access_token.*refresh_token/)
  t.match(setCookie('/auth/refresh', '200'), /Rotates/)
  t.match(setCookie('/auth/refresh', '401'), /Clears/)
  t.match(setCookie('/auth/logout', '204'), /Clears/)
  t.match(setCookie('/auth/password-confirmation', '200'), /password_confirmation_token/)
  t.notOk(document.paths['/tasks']?.post?.responses['201']?.headers, 'no cookie headers where none are set')
  t.equal(document.paths['/tasks/{id}']?.get?.responses['200']?.description, 'The task')
  t.match(document.paths['/tasks']?.get?.responses['200']?.description, /^A page of tasks/)
})

t.test('required and optional as the server has them', async (t) => {
  const { app } = await buildTestApp(t)
  const document = await documentOf(app)

  // Page routes: `limit` defaults to 20, so it is optional.
  for (const path of ['/lists', '/tasks', '/secrets']) {
    const limit = document.paths[path]?.get?.parameters?.find((parameter) => parameter.name === 'limit')
    t.equal(limit?.required, false, `${path}: limit is optional`)
    t.equal(limit?.schema.default, 20, `${path}: limit defaults to 20`)
  }
  // No parameter or body field with a default is required.
  for (const { name, operation } of operationsOf(document)) {
    for (const parameter of operation.parameters ?? []) {
      if ('default' in parameter.schema) t.notOk(parameter.required, `${name}: ${parameter.name} is optional`)
    }
    const body = resolve(document, operation.requestBody?.content['application/json']?.schema)
    for (const field of body?.required ?? []) {
      t.notOk(body?.properties?.[field] && 'default' in body.properties[field], `${name}: ${field} is optional`)
    }
  }

  // Logout's body is optional: no body means scope `current`.
  const logout = document.paths['/auth/logout']?.post
  t.equal(logout?.requestBody?.required, false, 'POST /auth/logout: the body is optional')
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout' })).statusCode, 204, 'and no body is a 204')

  // New passwords state the policy (8..256); a password to sign in with is any non-empty one.
  const bodyOf = (path: string, method: string) =>
    resolve(document, document.paths[path]?.[method]?.requestBody?.content['application/json']?.schema)
  t.match(bodyOf('/auth/signup', 'post')?.properties?.password, { minLength: 8, maxLength: 256 })
  t.match(bodyOf('/users/me/password', 'put')?.properties?.newPassword, { minLength: 8, maxLength: 256 })
  t.match(bodyOf('/auth/login', 'post')?.properties?.password, { minLength: 1 })
  t.notMatch(JSON.stringify(document), 'x-documented-as', 'documentation overrides are applied, not shown')
  t.notMatch(JSON.stringify(document), 'x-body-optional')
  // The policy is still the handler's: a short password is PASSWORD_TOO_WEAK, not VALIDATION_FAILED.
  const short = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email: 'short@example.com', password: 'Ab3$efg' },
  })
  t.equal(short.json().code, 'PASSWORD_TOO_WEAK')
})

t.test('a body the document requires is required, one it leaves optional is not', async (t) => {
  const { app } = await buildTestApp(t)
  const document = await documentOf(app)
  const account = await signup(app)
  for (const { method, path, name, operation } of operationsOf(document)) {
    if (!operation.requestBody) continue
    // An access token where the route needs one (so that validation is what answers), none where it is optional.
    const optionalAuth = (operation.security ?? [{}]).some((requirement) => Object.keys(requirement).length === 0)
    const response = await app.inject({
      method: method.toUpperCase() as 'POST',
      url: path.replace(/\{[^}]+\}/g, 'some-id'),
      headers: optionalAuth ? {} : account.bearer,
    })
    if (operation.requestBody.required === false) {
      t.not(response.statusCode, 400, `${name}: no body is accepted (${response.body})`)
    } else {
      t.equal(response.statusCode, 400, `${name}: no body is refused`)
      t.equal(response.json().code, 'VALIDATION_FAILED', `${name}: no body is VALIDATION_FAILED`)
    }
  }
})

t.test('a route the document has not seen gets the same treatment', async (t) => {
  const dir = tempDir(t)
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV }, cwd: dir })
  const app = Fastify(serverOptions(config))
  t.teardown(() => app.close())
  await app.register(fp(latchkey), { config })
  const Widget = Type.Object({ id: Type.String(), size: Type.Integer() }, { title: 'Widget' })
  await app.register(async (routes) => {
    // (In this plugin's own context: added at the root, it would replace the app's validator compiler.)
    routes.addSchema({ $id: 'Gadget', title: 'Gadget', type: 'object', properties: { widget: Widget } })
    routes.get('/gadget', { schema: { summary: 'A gadget', response: { 200: { $ref: 'Gadget#' } } } }, async () => ({
      widget: { id: 'w', size: 1 },
    }))
    routes.post(
      '/widgets/:id/polish',
      {
        schema: {
          summary: 'Polish a widget',
          security: ACCESS_SECURITY,
          params: Type.Object({ id: Type.String() }),
          body: Type.Object({ shine: Type.Integer({ default: 1 }), note: Type.String() }),
          response: { 200: Type.Object({ widget: Widget }), ...errorResponses(404) },
        },
      },
      async () => ({ widget: { id: 'w', size: 1 } }),
    )
  })
  await app.ready()
  const document = await documentOf(app)
  const operation = document.paths['/widgets/{id}/polish']?.post
  t.ok(operation)
  t.equal(operation?.operationId, 'postWidgetsByIdPolish', 'a mechanical operationId (which the test above refuses)')
  t.same(Object.keys(operation?.responses ?? {}).sort(), [
    '200',
    '400',
    '401',
    '403',
    '404',
    '413',
    '415',
    '429',
    '500',
    '503',
    '507',
  ])
  t.equal(operation?.responses['200']?.description, 'The widget')
  t.same(resolve(document, operation?.responses['200']?.content?.['application/json']?.schema)?.properties?.widget, {
    $ref: '#/components/schemas/Widget',
  })
  t.same(operation?.requestBody?.content['application/json']?.schema.required, ['note'], 'a default is optional')
  // A schema added with addSchema is a component under its title, with what it holds hoisted too.
  t.same(document.paths['/gadget']?.get?.responses['200']?.content?.['application/json']?.schema, {
    $ref: '#/components/schemas/Gadget',
  })
  t.same(document.components.schemas.Gadget?.properties?.widget, { $ref: '#/components/schemas/Widget' })
  t.same(
    Object.keys(document.components.schemas)
      .filter((name) => /^(Widget|Gadget)/.test(name))
      .sort(),
    ['Gadget', 'Widget'],
  )
  t.equal((await app.inject('/gadget')).json().widget.size, 1)
})

t.test("/docs: latchkey's reference of /openapi.json, under the app's own CSP", async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/docs')
  const page = response.statusCode === 302 ? await app.inject(response.headers.location as string) : response
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /<title>latchkey API reference<\/title>/)
  t.notMatch(page.body, /Swagger UI<\/title>/)
  t.notMatch(page.body, /<script(?![^>]*\ssrc=)[^>]*>/i, 'no inline script')
  // Helmet's policy, the same as on every other answer.
  const api = await app.inject('/health')
  t.equal(page.headers['content-security-policy'], api.headers['content-security-policy'])
  const script = await app.inject('/docs/static/theme/latchkey-docs.js')
  t.equal(script.statusCode, 200)
  t.match(script.headers['content-type'], /javascript/)
  t.match(script.body, 'url: "/openapi.json"')
  t.match(page.body, /theme\/latchkey-docs\.js/)
})
