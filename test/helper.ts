// Builds the real app on a fresh database (migrations applied) and offers small
// helpers for driving it with `app.inject`. Nothing is mocked. The database is
// a temporary SQLite file, or with TEST_DATABASE=postgres a fresh schema of the
// local PostgreSQL (TEST_POSTGRES_URL), dropped when the test ends; time is a
// TestClock that tests move forward instead of sleeping.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import pg from 'pg'
import latchkey, { buildApp, serverOptions } from '../src/app.js'
import type { Clock } from '../src/clock.js'
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

/** Which database the suite runs on: `sqlite` (default) or `postgres`. */
export const TEST_DATABASE = process.env.TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite'
export const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const onPostgres = TEST_DATABASE === 'postgres'

/** Secrets for PostgreSQL mode, where they must come from the environment. */
export const TEST_SECRETS: Record<string, string> = {
  JWT_SECRET: 'test-jwt-secret-0123456789abcdef0123456789abcdef',
  COOKIE_SECRET: 'test-cookie-secret-0123456789abcdef0123456789abcdef',
  DATA_ENCRYPTION_KEY: 'test-data-key-0123456789abcdef0123456789abcdef',
}

/** A clock that starts at the real time and moves only when told. */
export class TestClock implements Clock {
  #offset = 0
  now(): number {
    return Date.now() + this.#offset
  }
  advance(ms: number): void {
    this.#offset += ms
  }
}

let schemaCounter = 0

/** A fresh, empty PostgreSQL schema, dropped when the test ends; the URL selects it through search_path. */
export async function freshPostgresSchema(t: Teardown): Promise<string> {
  const schema = `lk_test_${process.pid}_${++schemaCounter}_${Date.now() % 100000}`
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL })
  await admin.connect()
  try {
    await admin.query(`create schema ${schema}`)
  } finally {
    await admin.end()
  }
  t.teardown(async () => {
    const cleanup = new pg.Client({ connectionString: TEST_POSTGRES_URL })
    await cleanup.connect()
    try {
      await cleanup.query(`drop schema if exists ${schema} cascade`)
    } finally {
      await cleanup.end()
    }
  })
  const url = new URL(TEST_POSTGRES_URL)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

/** The environment that selects the test database: none for SQLite (DATA_DIR's file), a fresh schema for PostgreSQL. */
export async function testDatabaseEnv(t: Teardown): Promise<Record<string, string>> {
  if (!onPostgres) return {}
  return { DATABASE_URL: await freshPostgresSchema(t), ...TEST_SECRETS }
}

export function tempDir(t: Teardown, prefix = 'latchkey-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function buildTestApp(
  t: Teardown,
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; config: Config; dir: string; clock: TestClock }> {
  const dir = tempDir(t)
  const config = loadConfig({ env: { DATA_DIR: dir, ...TEST_ENV, ...(await testDatabaseEnv(t)), ...env }, cwd: dir })
  const clock = new TestClock()
  const app = await buildApp(config, { clock })
  t.teardown(() => app.close())
  return { app, config, dir, clock }
}

/** Like buildTestApp, with the app's own logger options writing into `lines` (one JSON line each). */
export async function buildLoggedTestApp(
  t: Teardown,
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; config: Config; lines: string[] }> {
  const dir = tempDir(t)
  const config = loadConfig({
    env: { DATA_DIR: dir, ...TEST_ENV, ...(await testDatabaseEnv(t)), LOG_LEVEL: 'info', ...env },
    cwd: dir,
  })
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
