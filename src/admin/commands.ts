// `latchkey users ...` and `latchkey backup FILE` as the CLI runs them: the
// rules of ./users.ts and ./backup.ts, their answers as tables for people or as
// JSON (`--json`) for scripts. Each returns the process's exit code: 0 done,
// 1 refused (no such user, PostgreSQL for a backup, a file that exists).
import type { Kysely } from 'kysely'
import { createSecurityEvents } from '../auth/security-events.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database } from '../db/database.js'
import { backupSqlite, postgresBackupAdvice } from './backup.js'
import {
  deleteUserByEmail,
  disableUser,
  enableUser,
  listUsers,
  resetTotp,
  revokeAllSessions,
  showUser,
  type UserSummary,
} from './users.js'
import type { UsersAction } from './users-actions.js'

export interface Output {
  out(text: string): void
  err(text: string): void
}

/** Columns padded to their widest cell, two spaces apart. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? []
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

const dash = (value: string | null | undefined): string => value ?? '-'
const seconds = (iso: string | null): string => (iso === null ? '-' : iso.replace(/\.\d{3}Z$/, 'Z'))

function usersTable(users: UserSummary[]): string {
  return formatTable([
    ['EMAIL', 'ID', 'CREATED', 'SESSIONS', 'DISABLED'],
    ...users.map((user) => [
      user.email,
      user.id,
      seconds(user.createdAt),
      String(user.activeSessions),
      seconds(user.disabledAt),
    ]),
  ])
}

/** `latchkey users ACTION [EMAIL] [--email PATTERN] [--json]`. */
export async function usersCommand(
  config: Config,
  db: Kysely<Database>,
  clock: Clock,
  io: Output,
  args: { action: UsersAction; email?: string | undefined; pattern?: string | undefined; json: boolean },
): Promise<number> {
  const events = createSecurityEvents({
    clock,
    retention: config.securityEventRetention,
    // The audit line of each change, as the server logs its own (on stderr, apart from the answer).
    log: (line) => io.err(JSON.stringify({ time: clock.now(), msg: 'security event', ...line })),
  })
  const at = clock.now()
  const json = (value: unknown) => io.out(JSON.stringify(value, null, 2))
  const email = args.email ?? ''
  const noSuchUser = () => {
    if (args.json) json({ error: 'NOT_FOUND', email })
    io.err(`latchkey: no user with the email "${email}"`)
    return 1
  }

  switch (args.action) {
    case 'list': {
      const users = await listUsers(db, at, args.pattern)
      if (args.json) json({ users })
      else io.out(users.length === 0 ? 'no users' : usersTable(users))
      return 0
    }
    case 'show': {
      const user = await showUser(db, email, at)
      if (!user) return noSuchUser()
      if (args.json) {
        json({ user })
        return 0
      }
      io.out(
        formatTable([
          ['email', user.email],
          ['id', user.id],
          ['display name', dash(user.displayName)],
          ['email verified', user.emailVerified ? 'yes' : 'no'],
          ['created', seconds(user.createdAt)],
          ['updated', seconds(user.updatedAt)],
          ['disabled', user.disabledAt === null ? 'no' : `since ${seconds(user.disabledAt)}`],
          ['factors', user.factors.join(', ')],
        ]),
      )
      io.out(`\nactive sessions (${user.sessions.length})`)
      if (user.sessions.length > 0) {
        io.out(
          formatTable([
            ['ID', 'CREATED', 'LAST USED', 'EXPIRES', 'IP', 'USER AGENT'],
            ...user.sessions.map((session) => [
              session.id,
              seconds(session.createdAt),
              seconds(session.lastUsedAt),
              seconds(session.expiresAt),
              dash(session.ip),
              dash(session.userAgent),
            ]),
          ]),
        )
      }
      io.out(`\nrecent events (latest ${user.recentEvents.length})`)
      if (user.recentEvents.length > 0) {
        io.out(
          formatTable([
            ['TIME', 'EVENT', 'IP', 'SESSION', 'USER AGENT'],
            ...user.recentEvents.map((event) => [
              seconds(event.createdAt),
              event.type,
              dash(event.ip),
              dash(event.sessionId),
              dash(event.userAgent),
            ]),
          ]),
        )
      }
      return 0
    }
    case 'revoke-sessions': {
      const result = await revokeAllSessions(db, events, email, at)
      if (!result.found) return noSuchUser()
      if (args.json) json({ userId: result.userId, revokedSessions: result.revoked })
      else io.out(`revoked ${result.revoked} session(s) of ${email}; their tokens are refused from the next request on`)
      return 0
    }
    case 'reset-totp': {
      const result = await resetTotp(db, events, email)
      if (!result.found) return noSuchUser()
      if (args.json) json({ userId: result.userId, changed: result.changed })
      else
        io.out(
          result.changed
            ? `turned TOTP off for ${email} and ended its recovery codes; the password alone signs in again`
            : `${email} had no TOTP factor`,
        )
      return 0
    }
    case 'disable': {
      const result = await disableUser(db, events, email, at)
      if (!result.found) return noSuchUser()
      if (args.json)
        json({ userId: result.userId, disabled: true, changed: result.changed, revokedSessions: result.revoked })
      else
        io.out(
          `${result.changed ? 'disabled' : 'already disabled:'} ${email}; ${result.revoked} session(s) ended; it cannot sign in or refresh (403 ACCOUNT_DISABLED) until latchkey users enable`,
        )
      return 0
    }
    case 'enable': {
      const result = await enableUser(db, events, email)
      if (!result.found) return noSuchUser()
      if (args.json) json({ userId: result.userId, disabled: false, changed: result.changed })
      else io.out(result.changed ? `enabled ${email}; it can sign in again` : `${email} was not disabled`)
      return 0
    }
    case 'delete': {
      const result = await deleteUserByEmail(db, events, email)
      if (!result.found) return noSuchUser()
      if (args.json) json({ userId: result.userId, deleted: true })
      else io.out(`deleted ${email} (${result.userId}) with its sessions, lists, tasks, secrets and events`)
      return 0
    }
  }
}

/** `latchkey backup FILE [--json]`. */
export async function backupCommand(config: Config, io: Output, file: string, json: boolean): Promise<number> {
  if (config.database.kind !== 'sqlite') {
    io.err(postgresBackupAdvice)
    return 1
  }
  if (config.secretsFile?.pending) {
    // The secrets were just generated (the file is missing or incomplete): they are not the ones the data needs.
    io.err(
      `latchkey: ${config.secretsFile.path} lacks ${config.secretsFile.generated.join(', ')}: restore it (or set them in the environment) first; a copy without the database's secrets could not be restored`,
    )
    return 1
  }
  let result: Awaited<ReturnType<typeof backupSqlite>>
  try {
    result = await backupSqlite(config.database.file, file, {
      JWT_SECRET: config.jwtSecret,
      COOKIE_SECRET: config.cookieSecret,
      DATA_ENCRYPTION_KEY: config.dataEncryptionKey,
    })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    io.err(
      code === 'EEXIST'
        ? `latchkey: ${file} (or ${file}.secrets.json) exists already; choose a new name`
        : `latchkey: backup failed: ${(error as Error).message}`,
    )
    return 1
  }
  if (json) {
    io.out(JSON.stringify({ file: result.file, secretsFile: result.secretsFile, bytes: result.bytes }, null, 2))
    return 0
  }
  io.out(`wrote ${result.file} (${result.bytes} bytes, checked with PRAGMA quick_check)`)
  io.out(`wrote ${result.secretsFile} (JWT_SECRET, COOKIE_SECRET, DATA_ENCRYPTION_KEY; keep it as safe as the copy)`)
  io.out('both are readable by their owner only (0600); README "Backup and restore" says how to restore them')
  return 0
}
