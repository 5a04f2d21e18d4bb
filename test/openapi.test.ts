// The OpenAPI document describes every route of the contract, and /docs serves it.
import t from 'tap'
import { ERROR_CODES } from '../src/errors.js'
import { buildTestApp } from './helper.js'

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

interface Operation {
  summary?: string
  tags?: string[]
  security?: Array<Record<string, string[]>>
  requestBody?: { content: Record<string, { schema: unknown }> }
  responses: Record<string, { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }>
}

t.test('every contract route is documented', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/openapi.json')
  t.equal(response.statusCode, 200)
  const document = response.json()
  t.match(document.openapi, /^3\./)
  t.same(Object.keys(document.components.securitySchemes).sort(), [
    'bearerAuth',
    'cookieAuth',
    'passwordConfirmationCookie',
    'passwordConfirmationHeader',
    'refreshCookie',
  ])
  for (const code of Object.keys(ERROR_CODES)) t.match(document.info.description, code, `error code ${code} listed`)

  for (const [method, path, auth] of CONTRACT) {
    const operation = document.paths[path]?.[method] as Operation | undefined
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
    t.ok(statuses.includes('429'), `${name}: documents 429`)
    const errorSchema = operation.responses['429']?.content?.['application/json']?.schema
    t.ok(errorSchema?.properties?.code, `${name}: error responses have the error shape`)
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
})

t.test('/docs serves Swagger UI', async (t) => {
  const { app } = await buildTestApp(t)
  const response = await app.inject('/docs/')
  const page = response.statusCode === 302 ? await app.inject(response.headers.location as string) : response
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /swagger/i)
})
