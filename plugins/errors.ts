// One error shape for every error: { statusCode, code, error, message } (+ details
// for validation). Also owns body parsing: JSON only, an empty body is no body.
// 5xx answers never carry details; they are logged with the request id instead.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { DatabaseBusyError, isUnavailable } from '../src/db/errors.js'
import { AppError, type ErrorCode, type ErrorDetail } from '../src/errors.js'

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

export function sendError(reply: FastifyReply, error: AppError): FastifyReply {
  if (error.headers) reply.headers(error.headers)
  return reply
    .code(error.statusCode)
    .type('application/json; charset=utf-8')
    .send({
      statusCode: error.statusCode,
      code: error.code,
      error: STATUS_CODES[error.statusCode] ?? 'Error',
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    })
}

/**
 * Errors the router raises before any hook runs (a malformed URL, an oversized
 * path parameter): the same error shape, and the security headers set by hand
 * since Helmet's hook never ran.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const appError =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new AppError(404, 'NOT_FOUND', 'Not found')
      : new AppError(400, 'VALIDATION_FAILED', 'The request is not valid', [
          { field: 'url', message: 'is not a valid URL' },
        ])
  request.log.info({ code: appError.code, statusCode: appError.statusCode }, 'request refused')
  reply.headers({
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'referrer-policy': 'no-referrer',
    'strict-transport-security': 'max-age=31536000; includeSubDomains',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'SAMEORIGIN',
  })
  sendError(reply, appError)
}

async function errors(fastify: FastifyInstance): Promise<void> {
  // JSON is the only body type. An empty body parses to "no body", so routes
  // without a body accept clients that still send Content-Type: application/json.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string
    if (text.trim() === '') return done(null, undefined)
    try {
      done(null, JSON.parse(text))
    } catch {
      done(
        new AppError(400, 'VALIDATION_FAILED', 'The request is not valid', [
          { field: 'body', message: 'is not valid JSON' },
        ]),
      )
    }
  })

  fastify.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const appError = toAppError(error)
    if (appError.statusCode >= 500) {
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
