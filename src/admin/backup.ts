// Online backups of the SQLite database: `latchkey backup FILE` and the
// scheduled backups of BACKUP_CRON (plugins/backup.ts). SQLite's backup API
// (better-sqlite3's `.backup()`) copies the database page by page through a
// connection of its own while the server goes on reading and writing; the copy
// is one consistent state of the database (a write by another connection
// meanwhile restarts the copy, which after a few restarts finishes in one step,
// a single read transaction that writers in WAL mode do not wait for). The
// copy and the secrets file beside it are made 0600 before a byte is written.
// PostgreSQL has its own tools (pg_dump); `postgresBackupAdvice` says how.
import { closeSync, fsyncSync, openSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import SQLite from 'better-sqlite3'

/** The secrets the data depends on: tokens, sealed signing keys and secret messages cannot be read without them. */
export interface BackupSecrets {
  JWT_SECRET: string
  COOKIE_SECRET: string
  DATA_ENCRYPTION_KEY: string
}

export interface BackupResult {
  file: string
  secretsFile: string
  bytes: number
  /** Times a write by another connection restarted the copy. */
  restarts: number
}

/** Pages copied per step while the copy yields to the event loop between steps. */
const PAGES_PER_STEP = 256
/** Restarts after which the rest is copied in one step. */
const RESTARTS_BEFORE_ONE_STEP = 3
/** All remaining pages, in one step (better-sqlite3 clamps the step to this). */
const ALL_PAGES = 0x7fffffff

/** FILE.secrets.json: the secrets file that goes with the copy FILE. */
export const secretsFileOf = (file: string): string => `${file}.secrets.json`

/** Creates `file` empty and 0600 (whatever the umask), failing if it exists. */
function createPrivateFile(file: string): void {
  const fd = openSync(file, 'wx', 0o600)
  closeSync(fd)
}

function syncFile(file: string): void {
  const fd = openSync(file, 'r+')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Copies the SQLite database `source` to `destination` (which must not exist),
 * checks the copy (`PRAGMA quick_check`) and writes the secrets beside it.
 * Either both files are there when it returns, or neither.
 */
export async function backupSqlite(source: string, destination: string, secrets: BackupSecrets): Promise<BackupResult> {
  const file = path.resolve(destination)
  const secretsFile = secretsFileOf(file)
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  createPrivateFile(file)
  try {
    createPrivateFile(secretsFile)
  } catch (error) {
    rmSync(file, { force: true })
    throw error
  }
  let restarts = 0
  try {
    const database = new SQLite(source, { fileMustExist: true })
    try {
      let remaining = Number.POSITIVE_INFINITY
      await database.backup(file, {
        progress: ({ remainingPages }) => {
          if (remainingPages > remaining) restarts++
          remaining = remainingPages
          return restarts >= RESTARTS_BEFORE_ONE_STEP ? ALL_PAGES : PAGES_PER_STEP
        },
      })
    } finally {
      database.close()
    }
    const copy = new SQLite(file, { fileMustExist: true })
    try {
      const check = copy.pragma('quick_check', { simple: true })
      if (check !== 'ok') throw new Error(`the copy does not pass PRAGMA quick_check: ${String(check)}`)
      // One file, no -wal beside it: the copy is whole by itself.
      copy.pragma('journal_mode = DELETE')
    } finally {
      copy.close()
    }
    syncFile(file)
    writeFileSync(secretsFile, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 })
    syncFile(secretsFile)
    return { file, secretsFile, bytes: statSync(file).size, restarts }
  } catch (error) {
    rmSync(file, { force: true })
    rmSync(`${file}-journal`, { force: true })
    rmSync(secretsFile, { force: true })
    throw error
  }
}

/** The name of a scheduled backup made at `at`: sorts by time. */
export const scheduledBackupName = (at: number): string =>
  `latchkey-${new Date(at).toISOString().replace(/[:.]/g, '-')}.db`

const SCHEDULED = /^latchkey-\d{4}-\d{2}-\d{2}T[\d-]+Z\.db$/

/** Deletes the scheduled backups in `dir` beyond the newest `keep` (with their secrets files); returns their names. */
export function pruneBackups(dir: string, keep: number): string[] {
  const backups = readdirSync(dir)
    .filter((name) => SCHEDULED.test(name))
    .sort()
    .reverse()
  const old = backups.slice(keep)
  for (const name of old) {
    rmSync(path.join(dir, name), { force: true })
    rmSync(secretsFileOf(path.join(dir, name)), { force: true })
  }
  return old
}

/** What `latchkey backup` says on PostgreSQL, where it does not copy anything itself. */
export const postgresBackupAdvice = `latchkey backup copies the embedded SQLite database; this deployment uses PostgreSQL (DATABASE_URL).
Back PostgreSQL up with its own tools, which take a consistent copy while latchkey runs:

  pg_dump --format=custom --file=latchkey.dump "$DATABASE_URL"

and restore into an empty database with:

  pg_restore --no-owner --dbname="$DATABASE_URL" latchkey.dump

Keep JWT_SECRET, COOKIE_SECRET and DATA_ENCRYPTION_KEY with the dump, as safely:
without them the signing keys and secret messages in it cannot be read.
`
