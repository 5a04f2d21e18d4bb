// One error shape for every error: { statusCode, code, error, message } (+ details
// for validation), from the route handlers, the router and Node's HTTP parser
// alike, with the same security headers. Also owns body parsing (JSON only, an
// empty body is no body) and what requests get while the server shuts down.
// 5xx answers never carry details; they are logged with the request id instead.
import { type Server, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'
import { DatabaseBusyError, isStorageFull, isUnavailable } from '../src/db/errors.js'
import { AppError, type ErrorCode, type ErrorDetail } from '../src/errors.js'
import { securityHeadersFor } from './security-headers.js'

interface AjvIssue {
  instancePath?: string
  keyword?: string
  message?: string
  params?: Record<string, unknown>
}

/** Names each bad field the way a client wrote it: `title`, `items/0/id`, `limit`. */
function validationDetails(issues: AjvIssue[], context: string | undefined): ErrorDetail[] {
  return issues.map((issue) => {
    let field = (issue.instancePath ?? '').replace(/^\//, '')
    let message = issue.message ?? 'is invalid'
    const params = issue.params ?? {}
    if (issue.keyword === 'required' && typeof params.missingProperty === 'string') {
      field = [field, params.missingProperty].filter(Boolean).join('/')
      message = 'is required'
    } else if (issue.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      field = [field, params.additionalProperty].filter(Boolean).join('/')
      message = 'is not allowed'
    }
    return { field: field || context || 'body', message }
  })
}

const FASTIFY_CODES: Record<string, { status: number; code: ErrorCode; message: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'Bodies must be application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'VALIDATION_FAILED',
    message: 'Content-Length does not match the body',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'The body is too large' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'VALIDATION_FAILED', message: 'The body is not valid JSON' },
}

function toAppError(error: FastifyError & { validation?: AjvIssue[] }): AppError {
  if (error instanceof AppError) return error
  if (error instanceof DatabaseBusyError) {
    return new AppError(503, 'DATABASE_BUSY', 'The database is busy; retry shortly', undefined, { 'Retry-After': '1' })
  }
  if (isStorageFull(error)) {
    return new AppError(507, 'STORAGE_FULL', 'The server is out of storage space; retry later', undefined, {
      'Retry-After': '60',
    })
  }
  if (isUnavailable(error)) {
    return new AppError(503, 'SERVICE_UNAVAILABLE', 'The database does not answer; retry shortly', undefined, {
      'Retry-After': '5',
    })
  }
  if (error.validation) {
    return new AppError(
      400,
      'VALIDATION_FAILED',
      'The request is not valid',
      validationDetails(error.validation, error.validationContext),
    )
  }
  const known = error.code ? FASTIFY_CODES[error.code] : undefined
  if (known) {
    const details = known.code === 'VALIDATION_FAILED' ? [{ field: 'body', message: known.message }] : undefined
    return new AppError(known.status, known.code, known.message, details)
  }
  // A JSON syntax error's message quotes the body (which may hold a password):
  // never echo it.
  if (error instanceof SyntaxError || error.statusCode === 400) {
    return new AppError(400, 'VALIDATION_FAILED', 'The request is not valid', [
      { field: 'body', message: 'is not valid JSON' },
    ])
  }
  if (error.statusCode === 413) return new AppError(413, 'PAYLOAD_TOO_LARGE', 'The body is too large')
  if (error.statusCode === 415) return new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Bodies must be application/json')
  if (error.statusCode === 404) return new AppError(404, 'NOT_FOUND', 'Not found')
  return new AppError(500, 'INTERNAL_ERROR', 'Internal server error')
}

/** The contract's error body. */
function errorBody(error: AppError) {
  return {
    statusCode: error.statusCode,
    code: error.code,
    error: STATUS_CODES[error.statusCode] ?? 'Error',
    message: error.message,
    ...(error.details ? { details: error.details } : {}),
  }
}

export function sendError(reply: FastifyReply, error: AppError): FastifyReply {
  if (error.headers) reply.headers(error.headers)
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(errorBody(error))
}

/**
 * Errors the router raises before any hook runs (a malformed URL, an oversized
 * path parameter): the same error shape, and the security headers that
 * Helmet's hook would have set.
 */
export function frameworkErrorHandler(
  config: Config,
): (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  const headers = { ...securityHeadersFor(config).set, 'cache-control': 'no-store' }
  return (error, request, reply) => {
    const appError =
      error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? new AppError(404, 'NOT_FOUND', 'Not found')
        : new AppError(400, 'VALIDATION_FAILED', 'The request is not valid', [
            { field: 'url', message: 'is not a valid URL' },
          ])
    request.log.info({ code: appError.code, statusCode: appError.statusCode }, 'request refused')
    reply.headers(headers)
    sendError(reply, appError)
  }
}

/** What a request that Node's HTTP parser refused, or that did not arrive in time, is answered. */
function parserError(code: string): AppError {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new AppError(431, 'HEADERS_TOO_LARGE', 'The request headers are too large')
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new AppError(413, 'PAYLOAD_TOO_LARGE', 'The chunk extensions are too large')
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new AppError(408, 'REQUEST_TIMEOUT', 'The request did not arrive in time')
    default:
      return new AppError(400, 'BAD_REQUEST', 'The request is not valid HTTP')
  }
}

/**
 * Replaces Fastify's default `clientErrorHandler`, which logs the error with
 * `rawPacket`: the bytes received, Authorization header, cookies and body
 * included. Only the codes are logged here. The answer is written straight to
 * the socket (there is no request object yet), in the contract's shape with
 * the security headers of every other response, and the connection is closed.
 */
export function clientErrorHandler(config: Config): (error: ConnectionError, socket: Socket) => void {
  const headerLines = Object.entries({
    ...securityHeadersFor(config).set,
    'cache-control': 'no-store',
    'content-type': 'application/json; charset=utf-8',
    connection: 'close',
  })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')
  return function onClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
    // A reset connection has nobody left to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const appError = parserError(error.code)
    this.log.info(
      { code: appError.code, statusCode: appError.statusCode, cause: error.code, remoteAddress: socket.remoteAddress },
      'malformed or slow request refused',
    )
    // As Node's own handler: no answer once a response has begun on this connection.
    const response = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
    if (socket.writable && !response?.headersSent) {
      const body = JSON.stringify(errorBody(appError))
      socket.write(
        `HTTP/1.1 ${appError.statusCode} ${STATUS_CODES[appError.statusCode]}\r\n${headerLines}` +
          `date: ${new Date().toUTCString()}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
    }
    socket.destroy()
  }
}

/**
 * Shutting down, the listener stays open until no connection has arrived for
 * ACCEPT_QUIET_MS (at most ACCEPT_WINDOW_MS): closing it drops the connections
 * still waiting in the kernel's accept queue with a reset, although their
 * requests were sent before the shutdown began. Accepted, they get 503.
 */
const ACCEPT_QUIET_MS = 200
const ACCEPT_WINDOW_MS = 3000

async function untilNoNewConnections(server: Server): Promise<void> {
  let last = performance.now()
  const touch = () => {
    last = performance.now()
  }
  server.on('connection', touch)
  server.on('request', touch)
  try {
    const end = last + ACCEPT_WINDOW_MS
    for (;;) {
      await sleep(ACCEPT_QUIET_MS)
      // A timer can fire before pending connections are polled (after a long
      // task): let one poll phase run before deciding that none came.
      await nextTurn()
      const now = performance.now()
      if (now - last >= ACCEPT_QUIET_MS || now >= end) return
    }
  } finally {
    server.off('connection', touch)
    server.off('request', touch)
  }
}

async function errors(fastify: FastifyInstance): Promise<void> {
  // JSON is the only body type, parsed by Fastify's own parser (secure-json-parse:
  // `__proto__` and `constructor.prototype` keys are refused). An empty body
  // parses to "no body", so routes without a body accept clients that still
  // send Content-Type: application/json.
  const parseJson = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim() === '') return done(null, undefined)
    parseJson(request, body as string, done)
  })

  // Shutting down (app.close(), on SIGTERM): requests in flight finish; new
  // ones, on connections still open or still being accepted, get 503
  // SHUTTING_DOWN. Every answer from then on, in-flight ones included, carries
  // `Connection: close`, so no keep-alive connection outlives the drain.
  let draining = false
  const shuttingDown = new AppError(503, 'SHUTTING_DOWN', 'The server is shutting down', undefined, {
    'Retry-After': '1',
  })
  fastify.addHook('preClose', async () => {
    draining = true
    if (fastify.server.listening) await untilNoNewConnections(fastify.server)
  })
  fastify.addHook('onRequest', (request, reply, done) => {
    if (!draining) return done()
    request.log.info({ code: shuttingDown.code, statusCode: shuttingDown.statusCode }, 'request refused')
    sendError(reply, shuttingDown)
  })
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close')
    done(null, payload)
  })

  fastify.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    // The connection closed before the body arrived (the client left, or
    // REQUEST_TIMEOUT closed it): nobody is left to answer, and this
    // ECONNRESET says nothing about the database.
    if (error.code === 'ECONNRESET' && request.raw.socket?.destroyed) {
      request.log.info({ code: 'BAD_REQUEST', cause: error.code }, 'request aborted: the connection closed')
      return sendError(reply, new AppError(400, 'BAD_REQUEST', 'The request was aborted'))
    }
    const appError = toAppError(error)
    // Faults of the database itself feed /ready; a full disk is logged there, once a minute, not per request.
    if (request.server.databaseHealth?.observe(error)) {
      // Logged by databaseHealth.
    } else if (appError.statusCode >= 500) {
      // Logged with its cause; 503s of a known kind are the database's state, not a bug.
      if (appError.statusCode === 503)
        request.log.warn({ err: error, code: appError.code }, 'request refused: unavailable')
      else request.log.error({ err: error }, 'request failed')
    } else {
      request.log.info({ code: appError.code, statusCode: appError.statusCode }, 'request refused')
    }
    return sendError(reply, appError)
  })

  fastify.setNotFoundHandler(
    { preHandler: fastify.rateLimit ? fastify.rateLimit() : undefined },
    (_request: FastifyRequest, reply: FastifyReply) => sendError(reply, new AppError(404, 'NOT_FOUND', 'Not found')),
  )
}

export default fp(errors, { name: 'errors', dependencies: ['rate-limit'] })
