// Builds the real app on a fresh temporary SQLite file (migrations applied) and
// offers small helpers for driving it with `app.inject`. Nothing is mocked.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import latchkey, { buildApp, serverOptions } from '../src/app.js'
import { type Config, loadConfig } from '../src/config.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** Fast argon2 settings and generous limits, so tests run quickly; tests of limits lower them. */
export const TEST_ENV: Record<string, string> = {
  LOG_LEVEL: 'silent',
  ARGON2_MEMORY_KIB: '256',
  ARGON2_TIME_COST: '1',
  RATE_LIMIT_MAX: '100000',
  AUTH_RATE_LIMIT_MAX: '1000',
}

export function tempDir(t: Teardown, prefix = 'latchkey-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function buildTestApp(
  t: Teardown,
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; config: Config; dir: string }> {
  const dir = tempDir(t)
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, ...env }, cwd: dir })
  const app = await buildApp(config)
  t.teardown(() => app.close())
  return { app, config, dir }
}

/** Like buildTestApp, with the app's own logger options writing into `lines` (one JSON line each). */
export async function buildLoggedTestApp(
  t: Teardown,
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; config: Config; lines: string[] }> {
  const dir = tempDir(t)
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, LOG_LEVEL: 'info', ...env }, cwd: dir })
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  const options = serverOptions(config)
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  await app.register(fp(latchkey), { config })
  await app.ready()
  t.teardown(() => app.close())
  return { app, config, lines }
}

let counter = 0
export const uniqueEmail = (prefix = 'user'): string => `${prefix}-${process.pid}-${++counter}@example.com`
export const PASSWORD = 'correct horse battery staple'

/** The auth cookies a response set, as name -> raw (signed) value; cleared ones map to ''. */
export function cookiesOf(response: LightMyRequestResponse): Record<string, string> {
  return Object.fromEntries(response.cookies.map((cookie) => [cookie.name, cookie.value]))
}

export function cookieHeader(cookies: Record<string, string | undefined>): string {
  return Object.entries(cookies)
    .filter(([, value]) => value)
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

export interface Account {
  email: string
  password: string
  userId: string
  accessToken: string
  cookies: Record<string, string>
  /** Headers for bearer-authenticated requests. */
  bearer: { authorization: string }
}

export async function signup(
  app: FastifyInstance,
  overrides: { email?: string; password?: string; displayName?: string; headers?: Record<string, string> } = {},
): Promise<Account> {
  const email = overrides.email ?? uniqueEmail()
  const password = overrides.password ?? PASSWORD
  const response = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email, password, ...(overrides.displayName ? { displayName: overrides.displayName } : {}) },
    headers: overrides.headers,
  })
  if (response.statusCode !== 201) throw new Error(`signup failed: ${response.statusCode} ${response.body}`)
  const body = response.json()
  return {
    email,
    password,
    userId: body.user.id,
    accessToken: body.accessToken,
    cookies: cookiesOf(response),
    bearer: { authorization: `Bearer ${body.accessToken}` },
  }
}

export async function login(
  app: FastifyInstance,
  email: string,
  password = PASSWORD,
  headers: Record<string, string> = {},
): Promise<Account> {
  const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password }, headers })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  const body = response.json()
  return {
    email,
    password,
    userId: body.user.id,
    accessToken: body.accessToken,
    cookies: cookiesOf(response),
    bearer: { authorization: `Bearer ${body.accessToken}` },
  }
}

/** Gets a password-confirmation token for the account's session. */
export async function confirmPassword(app: FastifyInstance, account: Account): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation',
    headers: account.bearer,
    payload: { password: account.password },
  })
  if (response.statusCode !== 200) throw new Error(`confirmation failed: ${response.statusCode} ${response.body}`)
  return response.json().passwordConfirmationToken
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
