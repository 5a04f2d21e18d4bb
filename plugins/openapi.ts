// The OpenAPI 3 document (built from every route's schema) at /openapi.json and
// Swagger UI at /docs. Registered before the routes so it sees them all.
//
// Routes declare only what is theirs (schemas, summary, security, their own
// error statuses); `finishDocument` below makes the document one that client
// generators turn into a clean client, for every route alike, including routes
// added later: an operationId per operation, titled schemas as named components
// referenced with `$ref` (so the error-code enum appears once), the error
// statuses that every route can answer, response headers (Set-Cookie,
// Retry-After, WWW-Authenticate), and defaults that make a field optional.
import { STATUS_CODES } from 'node:http'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ERROR_CODES } from '../src/errors.js'
import { DOCUMENTED_AS, ERROR_STATUS_TEXT, ErrorSchema } from '../src/schemas.js'
import { version } from '../src/version.js'

/** The URL of the document, as the README names it. */
export const OPENAPI_PATH = '/openapi.json'

/**
 * The operationId of each operation, by `METHOD /path` as documented: the names
 * of a generated client's functions. A route missing here gets a mechanical
 * name (see `derivedOperationId`), and test/openapi.test.ts fails until it is
 * named here (or declares `schema.operationId` itself).
 */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  'POST /auth/signup': 'signUp',
  'POST /auth/login': 'logIn',
  'POST /auth/refresh': 'refresh',
  'POST /auth/logout': 'logOut',
  'GET /auth/sessions': 'listSessions',
  'DELETE /auth/sessions/{id}': 'revokeSession',
  'POST /auth/password-confirmation': 'confirmPassword',
  'POST /auth/password-confirmation/refresh': 'refreshPasswordConfirmation',
  'POST /auth/introspect': 'introspectToken',
  'POST /auth/email-verification': 'requestEmailVerification',
  'POST /auth/email-verification/confirm': 'confirmEmailVerification',
  'POST /auth/password-reset': 'requestPasswordReset',
  'POST /auth/password-reset/confirm': 'resetPassword',
  'POST /auth/email-change/confirm': 'confirmEmailChange',
  'POST /auth/sign-in-link': 'requestSignInLink',
  'POST /auth/sign-in-link/confirm': 'signInWithLink',
  'POST /auth/mfa/verify': 'verifyMfa',
  'GET /users/me': 'getCurrentUser',
  'PATCH /users/me': 'updateCurrentUser',
  'DELETE /users/me': 'deleteAccount',
  'PUT /users/me/password': 'changePassword',
  'GET /users/me/security-events': 'listSecurityEvents',
  'POST /users/me/mfa/totp': 'startTotpEnrollment',
  'POST /users/me/mfa/totp/confirm': 'confirmTotpEnrollment',
  'DELETE /users/me/mfa/totp': 'disableTotp',
  'POST /users/me/mfa/recovery-codes': 'regenerateRecoveryCodes',
  'GET /users/me/passkeys': 'listPasskeys',
  'POST /users/me/passkeys/registration-options': 'startPasskeyRegistration',
  'POST /users/me/passkeys': 'registerPasskey',
  'PATCH /users/me/passkeys/{id}': 'renamePasskey',
  'DELETE /users/me/passkeys/{id}': 'deletePasskey',
  'POST /auth/passkeys/authentication-options': 'startPasskeyAuthentication',
  'POST /auth/passkeys/login': 'signInWithPasskey',
  'GET /lists': 'listLists',
  'POST /lists': 'createList',
  'GET /lists/{id}': 'getList',
  'PATCH /lists/{id}': 'updateList',
  'DELETE /lists/{id}': 'deleteList',
  'GET /tasks': 'listTasks',
  'POST /tasks': 'createTask',
  'GET /tasks/{id}': 'getTask',
  'PATCH /tasks/{id}': 'updateTask',
  'DELETE /tasks/{id}': 'deleteTask',
  'GET /secrets': 'listSecrets',
  'POST /secrets': 'createSecret',
  'GET /secrets/{id}': 'getSecret',
  'PATCH /secrets/{id}': 'updateSecret',
  'DELETE /secrets/{id}': 'deleteSecret',
  'GET /health': 'getHealth',
  'GET /ready': 'getReadiness',
  'GET /.well-known/jwks.json': 'getJwks',
  'GET /.well-known/openid-configuration': 'getOpenIdConfiguration',
  'GET /metrics': 'getMetrics',
}

/** A camelCase name from method and path, for an operation OPERATION_IDS does not name: `GET /tasks/{id}` -> `getTasksById`. */
export function derivedOperationId(method: string, path: string): string {
  const words = path
    .split('/')
    .filter(Boolean)
    .map((segment) => (segment.startsWith('{') ? `by ${segment.slice(1, -1)}` : segment))
    .flatMap((segment) => segment.split(/[^A-Za-z0-9]+/))
    .filter(Boolean)
  return [method.toLowerCase(), ...words.map((word) => word.charAt(0).toUpperCase() + word.slice(1))].join('')
}

// ---------------------------------------------------------------- the document's shapes

type Schema = Record<string, unknown>
type SecurityRequirement = Record<string, string[]>

interface Header {
  description: string
  schema: Schema
}

interface Response {
  description: string
  headers?: Record<string, Header>
  content?: Record<string, { schema?: Schema }>
}

interface Parameter {
  in: string
  name: string
  required?: boolean
  schema?: Schema
}

interface Operation {
  operationId?: string
  summary?: string
  security?: SecurityRequirement[]
  parameters?: Parameter[]
  requestBody?: { required?: boolean; content: Record<string, { schema?: Schema }> }
  responses: Record<string, Response>
  [extension: `x-${string}`]: unknown
}

interface SecurityScheme {
  type: string
  in?: string
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
  components: { schemas?: Record<string, Schema>; securitySchemes?: Record<string, SecurityScheme> }
  [key: string]: unknown
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const UNSAFE_METHODS = new Set(['post', 'put', 'patch', 'delete'])
const ERROR_REF = '#/components/schemas/Error'

const isObject = (value: unknown): value is Schema =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

// ---------------------------------------------------------------- response headers

const retryAfter: Header = {
  description: 'Seconds to wait before trying again',
  schema: { type: 'integer', minimum: 0 },
}
const wwwAuthenticate: Header = {
  description:
    'The challenge, when an access token was missing or refused (`Bearer realm="latchkey"`, with `error="invalid_token"` and a description when one was refused) or client credentials were (`Basic realm="latchkey"`)',
  schema: { type: 'string' },
}
const setCookie = (description: string): Header => ({
  description: `${description}. One \`Set-Cookie\` header per cookie; every one HttpOnly and signed, \`Secure\` unless COOKIE_SECURE=false.`,
  schema: { type: 'string' },
})

const SESSION_STARTED =
  'A completed sign-in sets `access_token` (Path=/, SameSite=Lax), `refresh_token` (Path=/auth, SameSite=Strict) and `device_token` (Path=/auth, SameSite=Strict, 90 days)'
const COOKIES_CLEARED = 'Clears `access_token`, `refresh_token` and `password_confirmation_token` (sent expired)'
const CONFIRMATION_SET = 'Sets `password_confirmation_token` (Path=/, SameSite=Lax)'

/** Cookies an operation sets or clears, by status; sign-ins (a `SignedIn` answer) are found by their schema. */
const SETS_COOKIES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'POST /auth/refresh': {
    200: 'Rotates `access_token` and `refresh_token`',
    401: COOKIES_CLEARED,
  },
  'POST /auth/logout': { 204: `${COOKIES_CLEARED}, with scope \`current\` or \`all\`` },
  'POST /auth/password-confirmation': { 200: CONFIRMATION_SET },
  'POST /auth/password-confirmation/refresh': { 200: CONFIRMATION_SET },
  'DELETE /auth/sessions/{id}': { 204: `${COOKIES_CLEARED}, when the session revoked is the current one` },
  'DELETE /users/me': { 204: COOKIES_CLEARED },
}

/** Whether `schema` (or one of its alternatives) is the answer of a sign-in. */
function isSignedIn(schema: Schema | undefined): boolean {
  if (!schema) return false
  if (schema.title === 'SignedIn') return true
  const alternatives = [schema.anyOf, schema.oneOf].flatMap((list) => (Array.isArray(list) ? list : []))
  return alternatives.some((member) => isObject(member) && isSignedIn(member))
}

// ---------------------------------------------------------------- one operation

/** The error statuses every operation of this kind can answer, whatever its route declares. */
function errorStatusesOf(method: string, operation: Operation, schemes: Record<string, SecurityScheme>): number[] {
  const statuses = [429, 500, 503]
  const hasInput = Boolean(operation.requestBody || operation.parameters?.length)
  if (hasInput) statuses.push(400)
  if (operation.requestBody) statuses.push(413, 415)
  const requirements = operation.security ?? []
  if (requirements.some((requirement) => Object.keys(requirement).length > 0)) statuses.push(401)
  if (UNSAFE_METHODS.has(method)) {
    // A cookie-authenticated write from a foreign origin is refused (CSRF); every write can meet a full disk.
    const byCookie = requirements.some((requirement) =>
      Object.keys(requirement).some((name) => schemes[name]?.in === 'cookie'),
    )
    if (byCookie) statuses.push(403)
    statuses.push(507)
  }
  return statuses
}

/** A description for a success answer that has none of its own. */
function successDescription(status: string, method: string, operation: Operation, schema: Schema | undefined): string {
  const reason = STATUS_CODES[Number(status)] ?? 'Success'
  if (!schema || status === '204') return reason
  const properties = isObject(schema.properties) ? schema.properties : {}
  const names = Object.keys(properties)
  const [only] = names
  const single = names.length === 1 && only !== undefined ? properties[only] : undefined
  // `{ task: Task }`: "The task".
  if (isObject(single) && typeof single.title === 'string') return `The ${only}`
  // `{ items: Task[], nextCursor }`: "A page of tasks".
  const items = isObject(properties.items) && isObject(properties.items.items) ? properties.items.items : undefined
  if (items && typeof items.title === 'string' && 'nextCursor' in properties) {
    return `A page of ${items.title.charAt(0).toLowerCase()}${items.title.slice(1)}s, newest first; \`nextCursor\` is null on the last page`
  }
  if (method === 'get' && operation.summary) return operation.summary
  return typeof schema.title === 'string' ? `${reason}: ${schema.title}` : reason
}

function errorResponse(status: number): Response {
  return {
    description: ERROR_STATUS_TEXT[status] ?? STATUS_CODES[status] ?? 'Error',
    content: { 'application/json': { schema: { $ref: ERROR_REF } } },
  }
}

/** Fields with a default are optional: the server fills the default in. */
function defaultsAreOptional(schema: Schema | undefined): void {
  if (!schema || !Array.isArray(schema.required) || !isObject(schema.properties)) return
  const properties = schema.properties
  const required = schema.required.filter((name) => !(isObject(properties[name]) && 'default' in properties[name]))
  if (required.length > 0) schema.required = required
  else delete schema.required
}

function finishOperation(method: string, path: string, operation: Operation, document: OpenApiDocument): void {
  const key = `${method.toUpperCase()} ${path}`
  operation.operationId ??= OPERATION_IDS[key] ?? derivedOperationId(method, path)

  for (const parameter of operation.parameters ?? []) {
    if (parameter.in !== 'path' && isObject(parameter.schema) && 'default' in parameter.schema) {
      parameter.required = false
    }
  }
  if (operation.requestBody) {
    // @fastify/swagger marks every body required; a route that reads no body as `{}` says so.
    if (operation['x-body-optional'] === true) operation.requestBody.required = false
    for (const media of Object.values(operation.requestBody.content)) defaultsAreOptional(media.schema)
  }
  delete operation['x-body-optional']

  const schemes = document.components.securitySchemes ?? {}
  for (const status of errorStatusesOf(method, operation, schemes)) {
    operation.responses[status] ??= errorResponse(status)
  }

  const cookies = SETS_COOKIES[key] ?? {}
  for (const [status, response] of Object.entries(operation.responses)) {
    const schema = response.content?.['application/json']?.schema
    if (response.description === 'Default Response' || !response.description) {
      response.description = status.startsWith('2')
        ? successDescription(status, method, operation, schema)
        : (ERROR_STATUS_TEXT[Number(status)] ?? STATUS_CODES[Number(status)] ?? 'Error')
    }
    const headers: Record<string, Header> = { ...response.headers }
    if (status === '401') headers['WWW-Authenticate'] = wwwAuthenticate
    if (status === '429' || status === '503' || status === '507') headers['Retry-After'] = retryAfter
    const cookie = cookies[status] ?? (status.startsWith('2') && isSignedIn(schema) ? SESSION_STARTED : undefined)
    if (cookie) headers['Set-Cookie'] = setCookie(cookie)
    if (Object.keys(headers).length > 0) response.headers = headers
  }
}

// ---------------------------------------------------------------- named components

/** Keywords whose value is a schema, a list of schemas, or a map of them. */
const SUBSCHEMA = new Set(['items', 'additionalProperties', 'not', 'contains'])
const SUBSCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'allOf', 'prefixItems'])
const SUBSCHEMA_MAPS = new Set(['properties', 'patternProperties'])

/** JSON with sorted keys, to compare schemas. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (isObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`)
      .join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * Moves every schema with a `title` (TypeBox's `{ title: 'Task' }`) into
 * `components.schemas` under that title and refers to it with `$ref`, so a
 * generator names the type once (`Task`, `Error`, ...) instead of repeating it
 * inline. Two different schemas with one title keep apart (`Task2`): the tests
 * refuse that. Also applies documentation-only overrides (DOCUMENTED_AS).
 */
function hoistTitledSchemas(document: OpenApiDocument): void {
  document.components.schemas ??= {}
  const components = document.components.schemas
  const named = new Map<string, string>() // canonical form without description -> component name

  /** What makes two schemas the same type: all but their description. */
  const shapeOf = ({ description: _, ...shape }: Schema): string => canonical(shape)

  const register = (schema: Schema): string => {
    const shape = shapeOf(schema)
    const known = named.get(shape)
    if (known) return known
    const title = String(schema.title)
    let name = title
    for (let n = 2; name in components; n++) name = `${title}${n}`
    components[name] = schema
    named.set(shape, name)
    return name
  }

  const visit = (value: unknown): unknown => {
    if (!isObject(value) || '$ref' in value) return value
    const schema: Schema = {}
    for (const [key, child] of Object.entries(value)) {
      if (SUBSCHEMA.has(key)) schema[key] = visit(child)
      else if (SUBSCHEMA_LISTS.has(key) && Array.isArray(child)) schema[key] = child.map(visit)
      else if (SUBSCHEMA_MAPS.has(key) && isObject(child)) {
        schema[key] = Object.fromEntries(Object.entries(child).map(([name, property]) => [name, visit(property)]))
      } else schema[key] = child
    }
    const overrides = schema[DOCUMENTED_AS]
    delete schema[DOCUMENTED_AS]
    if (isObject(overrides)) Object.assign(schema, overrides)
    return typeof schema.title === 'string' ? { $ref: `#/components/schemas/${register(schema)}` } : schema
  }

  for (const [name, schema] of Object.entries(components)) {
    // A component there already (from addSchema) keeps its name; what it contains is hoisted.
    const { title, ...rest } = schema
    const component = { ...(title === undefined ? {} : { title }), ...(visit(rest) as Schema) }
    components[name] = component
    if (typeof title === 'string') named.set(shapeOf(component), name)
  }
  // The error shape, which the error answers added by finishOperation name.
  visit(JSON.parse(JSON.stringify(ErrorSchema)))
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method]
      if (!operation) continue
      for (const parameter of operation.parameters ?? []) parameter.schema = visit(parameter.schema) as Schema
      for (const media of Object.values(operation.requestBody?.content ?? {}))
        media.schema = visit(media.schema) as Schema
      for (const response of Object.values(operation.responses)) {
        for (const media of Object.values(response.content ?? {})) media.schema = visit(media.schema) as Schema
      }
    }
  }
}

/** Everything the routes leave to the document as a whole; runs once, when the document is first built. */
export function finishDocument(document: OpenApiDocument): OpenApiDocument {
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method]
      if (operation) finishOperation(method, path, operation, document)
    }
  }
  hoistTitledSchemas(document)
  return document
}

// ---------------------------------------------------------------- the plugin

const errorTable = Object.entries(ERROR_CODES)
  .map(([code, meaning]) => `| \`${code}\` | ${meaning} |`)
  .join('\n')

const description = `Self-hosted authentication server with a small per-user data API.

This document is served at [\`${OPENAPI_PATH}\`](${OPENAPI_PATH}); feed it to a client generator (operation ids name the functions, \`components.schemas\` the types).

Authenticate with the access token, either as \`Authorization: Bearer <jwt>\` or the signed \`access_token\` cookie (the header wins).
The refresh token lives only in the \`refresh_token\` cookie (Path=/auth): \`POST /auth/refresh\` reads it and sets its successor.
With AUTO_REFRESH=true, any cookie-authenticated answer may also carry rotated cookies.
Cookie-authenticated writes must come from the server's own origin or one listed in \`CORS_ALLOWED_ORIGIN\` (else \`403 CSRF_REJECTED\`).
Every error has the shape \`{ statusCode, code, error, message }\` (plus \`details\` for validation errors): the \`Error\` schema.

| code | meaning |
|---|---|
${errorTable}
`

/** /docs: Swagger UI for the document at /openapi.json, without its top bar. Replaces
 *  @fastify/swagger-ui's initializer (loaded just before it), which would load /docs/json. */
const DOCS_SCRIPT = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: ${JSON.stringify(OPENAPI_PATH)},
    dom_id: '#swagger-ui',
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    deepLinking: true,
    displayOperationId: true,
    validatorUrl: null,
  })
}
`

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="10" cy="16" r="6" fill="none" stroke="#2b3a4a" stroke-width="3"/><path d="M16 16h13M24 16v5M28 16v4" fill="none" stroke="#2b3a4a" stroke-width="3"/></svg>`

async function openapi(fastify: FastifyInstance): Promise<void> {
  await fastify.register(swagger, {
    // A folder's root route is declared as '/'; document `/lists`, not `/lists/`.
    transform: ({ schema, url }) => ({ schema, url: url.length > 1 ? url.replace(/\/$/, '') : url }),
    transformObject: (documentObject) => {
      if (!('openapiObject' in documentObject)) return documentObject.swaggerObject
      const document = documentObject.openapiObject as unknown as OpenApiDocument
      return finishDocument(document) as unknown as typeof documentObject.openapiObject
    },
    // Schemas added with addSchema() are components named by their title (or $id).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.title === 'string' ? json.title : typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    openapi: {
      openapi: '3.0.3',
      info: { title: 'latchkey', version, description },
      // Relative: the server that serves this document (a generated client sets its own base URL).
      servers: [{ url: '/', description: 'The server that serves this document' }],
      tags: [
        { name: 'auth', description: 'Sign-up, login, tokens and sessions' },
        { name: 'users', description: 'The signed-in account' },
        { name: 'mfa', description: 'TOTP and recovery codes: the second factor of a password login' },
        { name: 'passkeys', description: 'WebAuthn passkeys: sign in with no password (both factors at once)' },
        { name: 'lists', description: 'Task lists' },
        { name: 'tasks', description: 'Tasks' },
        { name: 'secrets', description: 'Secret messages, encrypted at rest' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Access token' },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: 'access_token', description: 'Signed access-token cookie' },
          refreshCookie: {
            type: 'apiKey',
            in: 'cookie',
            name: 'refresh_token',
            description: 'Signed refresh-token cookie (HttpOnly, SameSite=Strict, Path=/auth)',
          },
          passwordConfirmationHeader: {
            type: 'apiKey',
            in: 'header',
            name: 'X-Password-Confirmation',
            description: 'Password-confirmation token of the current session',
          },
          passwordConfirmationCookie: {
            type: 'apiKey',
            in: 'cookie',
            name: 'password_confirmation_token',
            description: 'Signed password-confirmation cookie',
          },
        },
      },
    },
  })
  // No CSP of its own: Helmet's (plugins/security-headers.ts) holds, since Swagger
  // UI's scripts and styles are files of this origin and its inline style
  // attributes are allowed by Helmet's `style-src 'unsafe-inline'`.
  await fastify.register(swaggerUi, {
    routePrefix: '/docs',
    // Unused without the top bar; given, so that the plugin does not read its own (Fastify's).
    logo: { type: 'image/svg+xml', content: FAVICON },
    theme: {
      title: 'latchkey API reference',
      js: [{ filename: 'latchkey-docs.js', content: DOCS_SCRIPT }],
      favicon: [{ filename: 'latchkey.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: FAVICON }],
    },
  })
  fastify.get(OPENAPI_PATH, { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'no-cache')
    return fastify.swagger()
  })
}

export default fp(openapi, { name: 'openapi' })
