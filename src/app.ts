// The whole app as one Fastify plugin, used alike by the server, the CLI and the
// tests. Plugins are registered in a fixed, visible order; route folders are
// auto-loaded, and each folder's `autohooks` protects it by where it lives.
import type { Server } from 'node:http'
import path from 'node:path'
import autoload, { type AutoloadPluginOptions } from '@fastify/autoload'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv, type Options as AjvOptions, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import Fastify, {
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import fp from 'fastify-plugin'
import type { DestinationStream } from 'pino'
import accountPagePlugin from '../plugins/account-page.js'
import authPlugin from '../plugins/auth.js'
import backupPlugin from '../plugins/backup.js'
import cookiesPlugin from '../plugins/cookies.js'
import corsPlugin from '../plugins/cors.js'
import csrfPlugin from '../plugins/csrf.js'
import dbPlugin from '../plugins/db.js'
import errorsPlugin, { clientErrorHandler, frameworkErrorHandler } from '../plugins/errors.js'
import jwtPlugin from '../plugins/jwt.js'
import mailPlugin from '../plugins/mail.js'
import metricsPlugin from '../plugins/metrics.js'
import openapiPlugin from '../plugins/openapi.js'
import rateLimitPlugin from '../plugins/rate-limit.js'
import redisPlugin from '../plugins/redis.js'
import schedulerPlugin from '../plugins/scheduler.js'
import securityHeadersPlugin from '../plugins/security-headers.js'
import { type Clock, systemClock } from './clock.js'
import type { Config } from './config.js'

export interface AppOptions {
  config: Config
  /** "Now" for every rule; tests pass one they can move. */
  clock?: Clock
}

/** How route folders are loaded. The single binary has no routes/ folder: its
 *  build walks it with these same options and swaps @fastify/autoload for a
 *  loader of static imports (scripts/build-binary.ts). */
export const ROUTES_AUTOLOAD: AutoloadPluginOptions = {
  dir: path.join(import.meta.dirname, '..', 'routes'),
  autoHooks: true,
  cascadeHooks: true,
  ignorePattern: /^schema\.(ts|js)$/,
  // Compiled output carries .d.ts and .map files beside the code.
  ignoreFilter: (file) => file.endsWith('.d.ts') || file.endsWith('.map'),
}

/*
 * Validators and response serializers are compiled on a route's first use, not
 * at start-up: compiling all of them (one per route, part and status code) was
 * about half of the start-up time, mostly for routes and error statuses a
 * deployment rarely sees. A schema error still fails its route's tests.
 */

/** Two validators: bodies are strict (no type coercion, unknown properties
 *  rejected); query strings and params coerce strings to numbers and booleans. */
export function validatorCompilers() {
  const base: AjvOptions = { allErrors: true, removeAdditional: false, useDefaults: true, strict: false }
  let body: Ajv | undefined
  let query: Ajv | undefined
  const ajv = (forBody: boolean): Ajv => {
    if (forBody) {
      body ??= addFormats.default(new Ajv({ ...base, coerceTypes: false }))
      return body
    }
    query ??= addFormats.default(new Ajv({ ...base, coerceTypes: 'array' }))
    return query
  }
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) => {
    let validate: ValidateFunction | undefined
    // Fastify reads a failed validation's `errors` from the function it was given.
    const validator = (data: unknown) => {
      validate ??= ajv(httpPart === 'body').compile(schema)
      const valid = validate(data)
      validator.errors = validate.errors
      return valid
    }
    validator.errors = undefined as ValidateFunction['errors']
    return validator
  }
}

/** Fastify's own serializer compiler (fast-json-stringify), deferred to first use. */
const buildSerializer = SerializerSelector()
function lazySerializers(...factoryArgs: Parameters<typeof buildSerializer>) {
  const compile = buildSerializer(...factoryArgs)
  return (route: Parameters<typeof compile>[0]) => {
    let serialize: ((data: unknown) => string) | undefined
    return (data: unknown) => {
      serialize ??= compile(route)
      return serialize(data)
    }
  }
}

export default async function latchkey(fastify: FastifyInstance, options: AppOptions): Promise<void> {
  fastify.decorate('config', options.config)
  fastify.decorate('clock', options.clock ?? systemClock)
  fastify.setValidatorCompiler(validatorCompilers())

  await fastify.register(securityHeadersPlugin)
  await fastify.register(corsPlugin)
  await fastify.register(redisPlugin)
  await fastify.register(rateLimitPlugin)
  await fastify.register(errorsPlugin)
  await fastify.register(dbPlugin)
  await fastify.register(metricsPlugin)
  await fastify.register(cookiesPlugin)
  await fastify.register(csrfPlugin)
  await fastify.register(jwtPlugin)
  await fastify.register(authPlugin)
  await fastify.register(mailPlugin)
  await fastify.register(openapiPlugin)
  await fastify.register(schedulerPlugin)
  await fastify.register(backupPlugin)
  await fastify.register(accountPagePlugin)

  await fastify.register(autoload, ROUTES_AUTOLOAD)
}

/** A request's path without its query string: a client may put anything in a query string. */
const pathOf = (url: string): string => {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/**
 * One access-log line per request where Fastify writes two, with flat fields:
 * method, path, status, time and client address. (Nested `req` and `res`
 * objects cost pino a serializer call and a JSON.stringify each: flat fields
 * took 7% less CPU per `/users/me`.)
 */
class AccessLog extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      url: pathOf(request.url),
      statusCode: reply.statusCode,
      responseTime: reply.elapsedTime,
      remoteAddress: request.ip,
    }
    if (error) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.info(line, 'request completed')
  }
}

/**
 * Server options derived from the configuration; logs never hold secrets.
 * `logStream` replaces pino's default destination (synchronous writes to
 * stdout): the server passes an asynchronous one (src/server.ts).
 */
export function serverOptions(config: Config, logStream?: DestinationStream): FastifyHttpOptions<Server> {
  const requestTimeout = config.requestTimeout * 1000
  const headersTimeout = config.headersTimeout * 1000
  return {
    bodyLimit: config.bodyLimit,
    // A hop count is valid at run time (proxy-addr), though Fastify's type omits it.
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    // Slow clients are cut off: the headers and the whole request must arrive in
    // time (a 408), a connection with no traffic is closed. Node checks the first
    // two on a timer (every 30 s by default), here every tenth of the headers timeout.
    requestTimeout,
    connectionTimeout: config.connectionTimeout * 1000,
    keepAliveTimeout: config.keepAliveTimeout * 1000,
    http: {
      requestTimeout,
      headersTimeout,
      connectionsCheckingInterval: Math.min(Math.max(headersTimeout / 10, 250), 5000),
    },
    // Shutting down, new requests get the contract's 503 SHUTTING_DOWN from the
    // errors plugin rather than Fastify's own 503 (no code, no security headers).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    frameworkErrors: frameworkErrorHandler(config),
    clientErrorHandler: clientErrorHandler(config),
    schemaController: { compilersFactory: { buildSerializer: lazySerializers } },
    logController: new AccessLog(),
    logger:
      config.logLevel === 'silent'
        ? false
        : {
            level: config.logLevel,
            ...(logStream ? { stream: logStream } : {}),
            // Requests and responses are logged through serializers that keep
            // an allow-list of fields, never headers or bodies. Defence in depth:
            // credentials logged under these keys anywhere else are censored.
            // (Paths under `req`/`res` could never match after those serializers,
            // and pino redacts by cloning the object: about a tenth of the CPU of
            // `/users/me`, for every access-log line.)
            redact: {
              paths: ['headers.authorization', 'headers.cookie', 'password', 'currentPassword', 'newPassword'],
              censor: '[redacted]',
            },
            serializers: {
              // Anything else that logs a request: the same fields as the access log.
              req: (request: { method: string; url: string; ip?: string }) => ({
                method: request.method,
                url: pathOf(request.url),
                remoteAddress: request.ip,
              }),
            },
          },
  }
}

/** Builds a ready app (server, CLI and tests all start here); `logStream` as for serverOptions. */
export async function buildApp(
  config: Config,
  { logStream, ...options }: Omit<AppOptions, 'config'> & { logStream?: DestinationStream } = {},
): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(config, logStream)).withTypeProvider<TypeBoxTypeProvider>()
  // fp: the app's decorators (db, config, ...) are visible on the instance
  // returned, for the CLI and the tests.
  await app.register(fp(latchkey), { ...options, config })
  await app.ready()
  return app
}
