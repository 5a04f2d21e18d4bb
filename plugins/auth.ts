// The auth decorators. `authenticate` (an onRequest hook, applied to protected
// route folders by their autohooks) accepts an access token from the
// `Authorization: Bearer` header or the signed `access_token` cookie (the header
// wins), verifies it (remembering verified tokens) and checks its session on every request, so
// revocation is immediate. `tokens` issues tokens and owns every auth cookie's
// name, path and attributes. `requirePasswordConfirmation` guards sensitive changes.

import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { decodeJwt } from 'jose'
import { LruMap } from 'toad-cache'
import { DEVICE_TOKEN_TTL, hashDeviceToken, issueDeviceToken } from '../src/auth/device-tokens.js'
import type { FlowContext } from '../src/auth/flows/context.js'
import { requireVerifiedEmail } from '../src/auth/flows/email-verification.js'
import type { Caller } from '../src/auth/flows/second-factor.js'
import { createLoginThrottle, type LoginThrottle } from '../src/auth/login-throttle.js'
import { createPasswordHasher, type PasswordHasher } from '../src/auth/passwords.js'
import { clientOf, createSecurityEvents, type SecurityEvents } from '../src/auth/security-events.js'
import {
  createSession,
  createSessionLookup,
  findSessionByRefreshToken,
  type IssuedRefreshToken,
  rotateRefreshToken,
  type SessionPolicy,
  type SignInMethod,
  touchSession,
} from '../src/auth/sessions.js'
import { isEmailVerified, type PublicUser, toPublicUser, type UserRecord } from '../src/auth/users.js'
import { postgresPools } from '../src/db/dialect.js'
import { AppError, accountDisabled, type ErrorCode } from '../src/errors.js'
import { createCounterFactory } from '../src/limits/counters.js'
import { ACCESS_SECURITY, errorResponses } from '../src/schemas.js'
import { toIso } from '../src/time.js'

export interface RequestAuth {
  userId: string
  sessionId: string
  user: UserRecord
  via: 'bearer' | 'cookie'
}

export interface IssuedToken {
  token: string
  expiresAt: string
}

/** RFC 7662's answer for an access token. */
export interface Introspection {
  active: boolean
  sub?: string
  sid?: string
  exp?: number
  iat?: number
  iss?: string
  jti?: string
  aud?: string
}

export interface SignedIn {
  user: PublicUser
  accessToken: string
  accessTokenExpiresAt: string
}

interface AccessClaims {
  sub: string
  sid: string
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    requirePasswordConfirmation: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    tokens: Tokens
    passwords: PasswordHasher
    loginThrottle: LoginThrottle
    /** The security event log and auth counters (src/auth/security-events.ts). */
    securityEvents: SecurityEvents
    /** What the flows of src/auth/flows run with. */
    flows: FlowContext
  }
  interface FastifyRequest {
    /** Set by `authenticate`; routes outside protected folders must not read it. */
    auth: RequestAuth
  }
}

/** Longest token accepted; anything longer is refused unparsed. */
const MAX_TOKEN_LENGTH = 4096
/** RFC 9110: the scheme name is case-insensitive. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i
/** Entries in each memo of verified credentials (cookie signatures, access tokens). */
const VERIFIED_LIMIT = 10_000
const PURPOSE_PASSWORD_CONFIRMATION = 'password-confirmation'

const seconds = (ms: number) => Math.floor(ms / 1000)

function accessError(code: ErrorCode, message: string): AppError {
  const challenge =
    code === 'AUTH_REQUIRED'
      ? 'Bearer realm="latchkey"'
      : `Bearer realm="latchkey", error="invalid_token", error_description="${message}"`
  return new AppError(401, code, message, undefined, { 'WWW-Authenticate': challenge })
}

export type Tokens = ReturnType<typeof createTokens>

function createTokens(fastify: FastifyInstance, events: SecurityEvents) {
  const { config, db, keys, clock, signingKeys } = fastify
  const policy: SessionPolicy = config
  const lookupSession = createSessionLookup(db)
  const baseCookie = {
    httpOnly: true,
    secure: config.cookieSecure,
    signed: true,
    ...(config.cookieDomain ? { domain: config.cookieDomain } : {}),
  }
  const cookies = {
    access_token: { ...baseCookie, path: '/', sameSite: config.cookieSameSite ?? 'lax' },
    refresh_token: {
      ...baseCookie,
      path: config.autoRefresh ? '/' : '/auth',
      sameSite: config.cookieSameSite ?? 'strict',
    },
    password_confirmation_token: { ...baseCookie, path: '/', sameSite: config.cookieSameSite ?? 'lax' },
    // Not a credential: it never authenticates, it only lets a client that signed
    // in before past the per-email failed-login ceiling. So it outlives logout:
    // clearCookies leaves it, and only login reads it (Path=/auth whatever AUTO_REFRESH says).
    device_token: { ...baseCookie, path: '/auth', sameSite: config.cookieSameSite ?? 'strict' },
  } as const

  async function issueAccessToken(userId: string, sessionId: string): Promise<IssuedToken> {
    const at = clock.now()
    const iat = seconds(at)
    const exp = iat + config.accessTokenTtl
    const claims = { sub: userId, sid: sessionId, jti: randomUUID(), iat, exp, iss: config.jwtIssuer }
    // Signed with the current signing key, named by the header's `kid`.
    const token = await signingKeys.sign(config.jwtAudience ? { ...claims, aud: config.jwtAudience } : claims, at)
    return { token, expiresAt: toIso(exp * 1000) }
  }

  function setSessionCookies(reply: FastifyReply, access: IssuedToken, refresh: IssuedRefreshToken): void {
    reply.setCookie('access_token', access.token, { ...cookies.access_token, maxAge: config.accessTokenTtl })
    reply.setCookie('refresh_token', refresh.token, {
      ...cookies.refresh_token,
      // Never past the session's absolute end.
      maxAge: Math.max(0, Math.ceil((refresh.expiresAt - clock.now()) / 1000)),
    })
  }

  /** Clears the session's cookies; the device cookie stays (API.md section 4: it is kept across logout). */
  function clearCookies(reply: FastifyReply): void {
    for (const [name, options] of Object.entries(cookies)) {
      if (name === 'device_token') continue
      const { signed: _, ...attributes } = options
      reply.clearCookie(name, attributes)
    }
  }

  // Signed cookie strings already verified, to their values: a client sends the
  // same cookie on every request. Only valid signatures are remembered, keyed by
  // the whole signed string, so a hit proves exactly what a fresh check would.
  const verifiedCookies = new LruMap<string>(VERIFIED_LIMIT)

  /** Reads a signed cookie; undefined when absent, null when present but not validly signed. */
  function readSignedCookie(request: FastifyRequest, name: keyof typeof cookies): string | null | undefined {
    const raw = request.cookies[name]
    if (raw === undefined) return undefined
    if (raw.length > MAX_TOKEN_LENGTH) return null
    const known = verifiedCookies.get(raw)
    if (known !== undefined) return known
    const unsigned = request.unsignCookie(raw)
    if (!unsigned.valid || !unsigned.value) return null
    verifiedCookies.set(raw, unsigned.value)
    return unsigned.value
  }

  type Verified = { ok: true; claims: AccessClaims } | { ok: false; expired: boolean }

  // Access tokens already verified, to their claims: a client sends the same token
  // until it expires, and an Ed25519 verification costs far more than a map
  // lookup. Keyed by the whole token, so a hit proves what a fresh check would;
  // only the time and the key set can change the answer, so on every hit the
  // expiry is checked (valid while now < `exp`, RFC 7519's rule, as jose counts)
  // and so is the token's key: a revoked key ends its remembered tokens at once.
  const verifiedTokens = new LruMap<{ claims: AccessClaims; expiresAt: number; kid: string }>(VERIFIED_LIMIT)
  const invalid: Verified = { ok: false, expired: false }

  async function verifyAccessToken(token: string): Promise<Verified> {
    if (token.length > MAX_TOKEN_LENGTH) return invalid
    const at = clock.now()
    const known = verifiedTokens.get(token)
    if (known !== undefined) {
      if (!signingKeys.verifies(known.kid, at)) {
        verifiedTokens.delete(token)
        return invalid
      }
      if (at < known.expiresAt) return { ok: true, claims: known.claims }
      verifiedTokens.delete(token)
      return { ok: false, expired: true }
    }
    // Signature with the key the `kid` names, in that key's algorithm only;
    // issuer, audience, required claims and expiry against the injectable clock.
    const checked = await signingKeys.verify(token, at)
    if (!checked.ok) return checked
    const { payload } = checked
    const { sub, sid, exp } = payload
    if (typeof sub !== 'string' || typeof sid !== 'string' || typeof exp !== 'number' || 'purpose' in payload) {
      return invalid
    }
    const verified = { sub, sid }
    verifiedTokens.set(token, { claims: verified, expiresAt: exp * 1000, kid: checked.kid })
    return { ok: true, claims: verified }
  }

  /** The live session an access token belongs to, if the token is valid. */
  async function sessionOfAccessToken(token: string): Promise<{ userId: string; sessionId: string } | undefined> {
    const verified = await verifyAccessToken(token)
    if (!verified.ok) return undefined
    const session = await lookupSession(verified.claims.sid, clock.now())
    if (!session || session.user.id !== verified.claims.sub) return undefined
    return { userId: session.user.id, sessionId: session.sessionId }
  }

  /** Rotates the refresh cookie and sets fresh cookies; throws the contract's refresh errors. */
  async function refresh(
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<{ session: { id: string; user_id: string }; access: IssuedToken }> {
    const token = readSignedCookie(request, 'refresh_token')
    if (token && config.requireEmailVerification) {
      // REQUIRE_EMAIL_VERIFICATION: checked before the rotation, so the cookies stay good for after the link.
      const owner = await findSessionByRefreshToken(db, keys, policy, token, clock.now(), { allowUsed: true })
      if (owner) requireVerifiedEmail(config, await isEmailVerified(db, owner.user_id))
    }
    const result = token
      ? await rotateRefreshToken(db, keys, policy, token, clock.now())
      : ({ ok: false, reason: 'invalid' } as const)
    events.metrics.refresh(result.ok ? (result.grace ? 'grace' : 'rotated') : result.reason)
    if (!result.ok) {
      clearCookies(reply)
      if (result.reason === 'disabled') throw accountDisabled()
      if (result.reason === 'reused') {
        request.log.warn({ code: 'REFRESH_TOKEN_REUSED' }, 'refresh token reuse detected; session revoked')
        events.metrics.sessionsRevoked('refresh_reuse', 1)
        const { session } = result
        await events.record(db, {
          type: 'refresh_reuse_detected',
          userId: session.user_id,
          sessionId: session.id,
          ...clientOf(request),
        })
        throw new AppError(
          401,
          'REFRESH_TOKEN_REUSED',
          'This refresh token was already used; the session has been revoked',
        )
      }
      if (result.reason === 'expired') throw new AppError(401, 'REFRESH_TOKEN_EXPIRED', 'The refresh token has expired')
      throw new AppError(401, 'REFRESH_TOKEN_INVALID', 'The refresh token is not valid')
    }
    const access = await issueAccessToken(result.session.user_id, result.session.id)
    setSessionCookies(reply, access, result.refreshToken)
    return { session: result.session, access }
  }

  /** The keyed hash of the device cookie the request presents, if it is validly signed and of our shape. */
  function deviceTokenHash(request: FastifyRequest): string | undefined {
    const token = readSignedCookie(request, 'device_token')
    return token ? hashDeviceToken(keys, token) : undefined
  }

  return {
    cookieOptions: cookies,
    clearCookies,
    refresh,
    deviceTokenHash,

    /**
     * Signs in: a new session, its tokens and cookies, and the response body;
     * records the sign-up or login (by `method`) with the new session.
     */
    async startSession(
      request: FastifyRequest,
      reply: FastifyReply,
      user: UserRecord,
      method: SignInMethod,
    ): Promise<SignedIn> {
      const event = method === 'signup' ? 'signup' : 'login_succeeded'
      // Every way in passes here: a disabled account gets no session, whatever proved who it is.
      if (typeof user.disabled_at === 'number') throw accountDisabled()
      const client = clientOf(request)
      const { session, refreshToken, endedBeyondCap } = await createSession(
        db,
        keys,
        policy,
        { userId: user.id, userAgent: client.userAgent, ip: request.ip, signInMethod: method },
        clock.now(),
        (trx, created) => events.record(trx, { type: event, userId: user.id, sessionId: created.id, ...client }),
      )
      events.metrics.sessionsRevoked('session_cap', endedBeyondCap)
      const access = await issueAccessToken(user.id, session.id)
      setSessionCookies(reply, access, refreshToken)
      // Every sign-in leaves a device cookie; the one this client held for the user is replaced.
      const device = await issueDeviceToken(db, keys, user.id, clock.now(), deviceTokenHash(request))
      reply.setCookie('device_token', device, { ...cookies.device_token, maxAge: DEVICE_TOKEN_TTL })
      return { user: toPublicUser(user), accessToken: access.token, accessTokenExpiresAt: access.expiresAt }
    },

    issuePasswordConfirmation(reply: FastifyReply, auth: RequestAuth): IssuedToken {
      const iat = seconds(clock.now())
      const exp = iat + config.passwordConfirmationTtl
      const token = fastify.jwt.passwordConfirmation.sign({
        sub: auth.userId,
        sid: auth.sessionId,
        jti: randomUUID(),
        iat,
        exp,
        iss: config.jwtIssuer,
        purpose: PURPOSE_PASSWORD_CONFIRMATION,
      })
      reply.setCookie('password_confirmation_token', token, {
        ...cookies.password_confirmation_token,
        maxAge: config.passwordConfirmationTtl,
      })
      return { token, expiresAt: toIso(exp * 1000) }
    },

    /** RFC 7662: active only for a valid access token of a live session (what a resource server must honour). */
    async introspect(token: string): Promise<Introspection> {
      const session = await sessionOfAccessToken(token)
      if (!session) return { active: false }
      // Verified above (signature and claims): its claims can be read as they are.
      const { sub, sid, exp, iat, iss, jti, aud } = decodeJwt(token)
      return {
        active: true,
        sub,
        sid: typeof sid === 'string' ? sid : undefined,
        exp,
        iat,
        iss,
        jti,
        aud: typeof aud === 'string' ? aud : undefined,
      }
    },

    /**
     * The session a request belongs to, from a valid access token or else a
     * current refresh cookie; for logout, which accepts either.
     */
    async identifySession(request: FastifyRequest): Promise<{ userId: string; sessionId: string } | undefined> {
      const header = request.headers.authorization
      if (header !== undefined) {
        // A request with an Authorization header is authenticated by it alone:
        // it skipped the CSRF check, so its cookies must not count.
        const accessToken = BEARER.exec(header)?.[1]
        return accessToken ? sessionOfAccessToken(accessToken) : undefined
      }
      const accessToken = readSignedCookie(request, 'access_token')
      const fromAccess = accessToken ? await sessionOfAccessToken(accessToken) : undefined
      if (fromAccess) return fromAccess
      const refreshToken = readSignedCookie(request, 'refresh_token')
      if (!refreshToken) return undefined
      const session = await findSessionByRefreshToken(db, keys, policy, refreshToken, clock.now(), {
        allowUsed: false,
      })
      return session ? { userId: session.user_id, sessionId: session.id } : undefined
    },

    async authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const header = request.headers.authorization
      let token: string | null | undefined
      let via: RequestAuth['via'] = 'cookie'
      if (header !== undefined) {
        via = 'bearer'
        token = BEARER.exec(header)?.[1] ?? null
      } else {
        token = readSignedCookie(request, 'access_token')
      }
      if (token === null) throw accessError('ACCESS_TOKEN_INVALID', 'The access token is not valid')

      const verified = token === undefined ? undefined : await verifyAccessToken(token)
      const at = clock.now()
      if (verified?.ok) {
        const session = await lookupSession(verified.claims.sid, at)
        if (!session || session.user.id !== verified.claims.sub) {
          throw accessError('SESSION_REVOKED', 'The session of this token has ended')
        }
        await touchSession(db, session, at)
        request.auth = { userId: session.user.id, sessionId: session.sessionId, user: session.user, via }
        return
      }

      // AUTO_REFRESH: a cookie client whose access token expired (or whose browser
      // already dropped the expired cookie) is served if its refresh cookie is good.
      const expiredOrMissing = verified === undefined || verified.expired
      if (config.autoRefresh && via === 'cookie' && expiredOrMissing && request.cookies.refresh_token !== undefined) {
        try {
          const { session } = await refresh(request, reply)
          const current = await lookupSession(session.id, at)
          if (current) {
            request.auth = { userId: current.user.id, sessionId: current.sessionId, user: current.user, via }
            return
          }
        } catch {
          // Fall through to the access-token error.
        }
      }
      if (verified === undefined) throw accessError('AUTH_REQUIRED', 'An access token is required')
      if (verified.expired) throw accessError('ACCESS_TOKEN_EXPIRED', 'The access token has expired')
      throw accessError('ACCESS_TOKEN_INVALID', 'The access token is not valid')
    },

    async requirePasswordConfirmation(request: FastifyRequest): Promise<void> {
      const header = request.headers['x-password-confirmation']
      const token =
        header !== undefined
          ? Array.isArray(header)
            ? null
            : header
          : readSignedCookie(request, 'password_confirmation_token')
      const refuse = () =>
        new AppError(
          403,
          'PASSWORD_CONFIRMATION_REQUIRED',
          'Confirm your password first (POST /auth/password-confirmation)',
        )
      if (!token || token.length > MAX_TOKEN_LENGTH) throw refuse()
      let claims: Record<string, unknown>
      try {
        claims = fastify.jwt.passwordConfirmation.verify<Record<string, unknown>>(token)
      } catch {
        throw refuse()
      }
      // Bound to the caller's own current session.
      if (
        typeof claims.exp !== 'number' ||
        clock.now() > claims.exp * 1000 ||
        claims.purpose !== PURPOSE_PASSWORD_CONFIRMATION ||
        claims.sid !== request.auth.sessionId ||
        claims.sub !== request.auth.userId
      ) {
        throw refuse()
      }
    },
  }
}

async function auth(fastify: FastifyInstance): Promise<void> {
  const { config } = fastify
  const securityEvents = createSecurityEvents({
    clock: fastify.clock,
    retention: config.securityEventRetention,
    metrics: fastify.metrics.auth,
    log: (line) => fastify.log.info(line, 'security event'),
  })
  fastify.decorate('securityEvents', securityEvents)
  const tokens = createTokens(fastify, securityEvents)
  fastify.decorateRequest('auth', null as unknown as RequestAuth)
  fastify.decorate('tokens', tokens)
  fastify.decorate('authenticate', tokens.authenticate)
  fastify.decorate('requirePasswordConfirmation', tokens.requirePasswordConfirmation)
  const passwords = createPasswordHasher({
    memoryKib: config.argon2MemoryKib,
    timeCost: config.argon2TimeCost,
    parallelism: config.argon2Parallelism,
    concurrency: config.hashConcurrency,
    queueMax: config.hashQueueMax,
    onWait: fastify.metrics.passwordWait,
  })
  fastify.decorate('passwords', passwords)
  fastify.addHook('onListen', async () => passwords.prepare())
  const pool = postgresPools.get(fastify.database)
  const counters = createCounterFactory(
    fastify.redis ? { kind: 'redis', client: fastify.redis } : pool ? { kind: 'postgres', pool } : { kind: 'memory' },
    (message) => fastify.log.warn(message),
  )
  const loginThrottle = createLoginThrottle(counters, config.authRateLimitMax)
  fastify.decorate('loginThrottle', loginThrottle)
  fastify.decorate('flows', {
    db: fastify.db,
    clock: fastify.clock,
    passwords,
    loginThrottle,
    events: securityEvents,
  })
}

export default fp(auth, { name: 'auth', dependencies: ['db', 'redis', 'jwt', 'cookies', 'metrics'] })

/** The signed-in caller of a protected route, as the flows of src/auth/flows take it. */
export function callerOf(request: FastifyRequest): Caller {
  const { userId, sessionId, user } = request.auth
  return { userId, sessionId, email: user.email, ip: request.ip, userAgent: clientOf(request).userAgent }
}

type HookList = NonNullable<RouteOptions['onRequest']>

/**
 * Protects every route of the folder whose `autohooks` file exports it: adds
 * `authenticate` after the route's other onRequest hooks (so the per-IP rate
 * limit counts refused tokens too) and documents the bearer/cookie security
 * requirement and the 401 answer in the OpenAPI document.
 */
export async function protectRoutes(fastify: FastifyInstance): Promise<void> {
  fastify.addHook('onRoute', (route) => {
    const existing: HookList = route.onRequest ?? []
    route.onRequest = [...(Array.isArray(existing) ? existing : [existing]), fastify.authenticate] as HookList
    const schema = route.schema ?? {}
    route.schema = {
      ...schema,
      security: schema.security ?? ACCESS_SECURITY,
      response: { ...errorResponses(401), ...(schema.response as object | undefined) },
    }
  })
}
