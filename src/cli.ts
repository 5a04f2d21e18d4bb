#!/usr/bin/env node
// `latchkey [serve|migrate|cleanup|keys|users|backup|healthcheck] [--help] [--version]`:
// the package's bin and the single binary's entry point.
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import type { Kysely } from 'kysely'
import { USERS_ACTIONS, type UsersAction } from './admin/users-actions.js'
import { type Config, ConfigError, loadConfig } from './config.js'
import type { Database } from './db/database.js'
import { version } from './version.js'

/** What `latchkey healthcheck` asks by default: /ready on this host at the image's PORT. */
const READY_URL = 'http://127.0.0.1:3000/ready'

const HELP = `latchkey ${version}: self-hosted authentication server

Usage: latchkey [command] [options]

Commands:
  serve     start the HTTP server (default); applies pending migrations first
  migrate   apply pending database migrations and exit
  cleanup   delete expired and revoked sessions once and exit
  keys list          show the access-token signing keys and their states
  keys rotate        publish a new signing key; it signs after the JWKS cache
                     lifetime, and the old one retires then
  keys revoke KID    refuse every token of key KID at once, on every instance
  users list [--email PATTERN]  accounts (PATTERN: part of the address, or
                                a pattern with * and ?)
  users show EMAIL              an account, its active sessions, factors and
                                recent security events
  users revoke-sessions EMAIL   end every session of the account now
  users reset-totp EMAIL        turn the account's authenticator app (TOTP)
                                off and end its recovery codes
  users disable EMAIL           the account cannot sign in or refresh, and
                                its sessions end now (403 ACCOUNT_DISABLED)
  users enable EMAIL            undo users disable
  users delete EMAIL            delete the account and all its data
  backup FILE        copy the SQLite database, while the server runs, to FILE
                     and its secrets to FILE.secrets.json (both 0600)
  healthcheck [URL]  exit 0 if URL answers 200, else 1 (a container's health
                     check); URL defaults to ${READY_URL}

Options:
  --json         users and backup: answer JSON (for scripts), not tables
  -h, --help     show this help
  -v, --version  print the version

Configuration is read from environment variables and a .env file in the
working directory; see the README for the full list. With nothing set, data
lives in ./data.
`

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        json: { type: 'boolean' },
        email: { type: 'string' },
      },
    })
  } catch (error) {
    process.stderr.write(`latchkey: ${(error as Error).message}\n\n${HELP}`)
    return 2
  }
  if (parsed.values.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (parsed.values.version) {
    process.stdout.write(`${version}\n`)
    return 0
  }
  const [command = 'serve', ...extra] = parsed.positionals
  const usersAction = extra[0] as UsersAction
  const known =
    command === 'keys'
      ? (extra.length === 1 && ['list', 'rotate'].includes(extra[0] as string)) ||
        (extra.length === 2 && extra[0] === 'revoke')
      : command === 'healthcheck'
        ? extra.length <= 1
        : command === 'users'
          ? USERS_ACTIONS.includes(usersAction) && extra.length === (usersAction === 'list' ? 1 : 2)
          : command === 'backup'
            ? extra.length === 1
            : extra.length === 0 && ['serve', 'migrate', 'cleanup'].includes(command)
  const emailPattern = typeof parsed.values.email === 'string' ? parsed.values.email : undefined
  if (known && emailPattern !== undefined && !(command === 'users' && usersAction === 'list')) {
    process.stderr.write(`latchkey: --email is an option of users list only\n\n${HELP}`)
    return 2
  }
  if (!known) {
    process.stderr.write(`latchkey: unknown command "${[command, ...extra].join(' ')}"\n\n${HELP}`)
    return 2
  }
  // Before the configuration: like --help, it reads no variable and no file.
  if (command === 'healthcheck') return healthcheck(extra[0] ?? READY_URL)

  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`latchkey: invalid configuration: ${error.message}\n`)
      return 1
    }
    throw error
  }

  // The commands' modules load only now: --help, --version and a bad
  // configuration need none of them, and in the single binary their loading
  // unpacks its native addons (scripts/binary/embedded.ts).
  if (command === 'serve') {
    const { startServer } = await import('./server.js')
    await startServer(config)
    return -1 // keep running until a signal
  }
  const io = {
    out: (text: string) => process.stdout.write(`${text}\n`),
    err: (text: string) => process.stderr.write(`${text}\n`),
  }
  const json = parsed.values.json === true
  if (command === 'backup') {
    // A copy of the database as it is: no migration first.
    const { backupCommand } = await import('./admin/commands.js')
    return backupCommand(config, io, extra[0] as string, json)
  }
  const [{ cleanupSessions }, { openDatabase }, { migrateToLatest }] = await Promise.all([
    import('./auth/cleanup.js'),
    import('./db/dialect.js'),
    import('./db/migrator.js'),
  ])
  const database = openDatabase(config.database)
  let code = 0
  try {
    const applied = await migrateToLatest(database.db)
    if (command === 'migrate') {
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
    } else if (command === 'keys') {
      code = await keysCommand(config, database.db, extra)
    } else if (command === 'users') {
      const [{ usersCommand }, { systemClock }] = await Promise.all([
        import('./admin/commands.js'),
        import('./clock.js'),
      ])
      code = await usersCommand(config, database.db, systemClock, io, {
        action: usersAction,
        email: extra[1],
        pattern: emailPattern,
        json,
      })
    } else {
      const deleted = await database.exclusively('cleanup', () => cleanupSessions(database.db, Date.now()))
      process.stdout.write(
        deleted === undefined
          ? 'another instance is cleaning up now; nothing done\n'
          : `deleted ${deleted} expired or revoked sessions and refresh tokens\n`,
      )
    }
  } finally {
    await database.close()
  }
  return code
}

/**
 * `latchkey healthcheck [URL]`: 0 when URL answers 200 within 5 s, else 1
 * (Docker's HEALTHCHECK: 0 healthy, 1 unhealthy). The image has no curl and
 * no shell, so its HEALTHCHECK runs the binary itself.
 */
async function healthcheck(url: string): Promise<number> {
  let target: URL
  try {
    target = new URL(url)
  } catch {
    process.stderr.write(`latchkey: healthcheck: "${url}" is not a URL\n`)
    return 1
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    process.stderr.write(`latchkey: healthcheck: "${url}" is not an http:// or https:// URL\n`)
    return 1
  }
  try {
    const response = await fetch(target, { redirect: 'manual', signal: AbortSignal.timeout(5_000) })
    const body = (await response.text()).slice(0, 300)
    if (response.status === 200) {
      process.stdout.write(`${target.href}: ${response.status} ${body}\n`)
      return 0
    }
    process.stderr.write(`latchkey: healthcheck: ${target.href} answered ${response.status} ${body}\n`)
  } catch (error) {
    const cause = (error as Error & { cause?: Error }).cause ?? (error as Error)
    process.stderr.write(`latchkey: healthcheck: ${target.href}: ${cause.message ?? String(cause)}\n`)
  }
  return 1
}

const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'))

/** `latchkey keys list | rotate | revoke KID`, on whichever database is configured. */
async function keysCommand(config: Config, db: Kysely<Database>, args: string[]): Promise<number> {
  const [{ deriveKeys }, signing] = await Promise.all([import('./auth/keys.js'), import('./auth/signing-keys.js')])
  const keys = deriveKeys(config)
  const policy = signing.accessTokenPolicy(config)
  const out = (text: string) => process.stdout.write(`${text}\n`)
  const hs256Note = `JWT_ALGORITHM=HS256: access tokens are signed with a key derived from JWT_SECRET (kid ${signing.hs256KeyId(keys)}), not with these keys`
  const now = Date.now()
  const [action, kid] = args

  if (action === 'list') {
    if (policy.algorithm === 'HS256') out(hs256Note)
    const views = await signing.listKeys(db, now)
    if (views.length === 0) {
      out('no signing keys yet (the server creates the first one when it starts)')
      return 0
    }
    const rows = [
      ['KID', 'ALG', 'STATE', 'CREATED', 'SIGNS FROM', 'RETIRES', 'LEAVES JWKS', 'REVOKED'],
      ...views.map((key) => [
        key.kid,
        key.algorithm,
        key.state,
        iso(key.createdAt),
        iso(key.activatesAt),
        iso(key.retiresAt),
        iso(key.expiresAt),
        iso(key.revokedAt),
      ]),
    ]
    const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? []
    for (const row of rows)
      out(
        row
          .map((cell, column) => cell.padEnd(widths[column] ?? 0))
          .join('  ')
          .trimEnd(),
      )
    return 0
  }

  if (action === 'rotate') {
    if (policy.algorithm === 'HS256') {
      process.stderr.write(`latchkey: ${hs256Note}; there is no key to rotate (change JWT_SECRET instead)\n`)
      return 1
    }
    const result = await signing.rotateKeys(db, keys, policy, now)
    if (result.kind === 'pending') {
      out(`a rotation is already under way: ${result.next.kid} signs from ${iso(result.next.activatesAt)}`)
    } else if (result.kind === 'created') {
      out(`created ${result.current.kid} (${result.current.algorithm}); it signs from now`)
    } else if (result.kind === 'started') {
      out(
        `published ${result.next.kid} (${result.next.algorithm}) as next: it signs from ${iso(result.next.activatesAt)}, one JWKS cache lifetime (${signing.JWKS_MAX_AGE}s) from now`,
      )
      out(
        `${result.current.kid} retires then, and leaves the JWKS at ${iso(result.current.expiresAt)}, when the last token it signed has expired`,
      )
    }
    return 0
  }

  const result = await signing.revokeKey(db, keys, policy, kid as string, now)
  if (result.kind === 'unknown') {
    process.stderr.write(`latchkey: no signing key "${kid}" (see latchkey keys list)\n`)
    return 1
  }
  if (result.kind === 'already') {
    out(`${result.key.kid} was already revoked at ${iso(result.key.revokedAt)}`)
    return 0
  }
  // Every running instance re-reads the key set each KEY_SET_REFRESH_MS: once
  // this wait is over, all of them refuse the key's tokens.
  await sleep(2 * signing.KEY_SET_REFRESH_MS + 500)
  out(`revoked ${result.key.kid} (was ${result.wasState}): every instance refuses the tokens it signed from now on`)
  if (result.replacement) {
    out(`${result.replacement.kid} (${result.replacement.algorithm}) is the current key now and signs every new token`)
  }
  out(
    `resource servers that verify tokens themselves may accept them until their JWKS cache (up to ${signing.JWKS_MAX_AGE}s) runs out; POST /auth/introspect refuses them now`,
  )
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`latchkey: ${(error as Error).message ?? String(error)}\n`)
    process.exit(1)
  },
)
