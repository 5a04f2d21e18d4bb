#!/usr/bin/env node
// `latchkey [serve|migrate|cleanup] [--help] [--version]`: the package's bin and
// the single binary's entry point.
import { parseArgs } from 'node:util'
import { cleanupSessions } from './auth/cleanup.js'
import { type Config, ConfigError, loadConfig } from './config.js'
import { openDatabase } from './db/dialect.js'
import { migrateToLatest } from './db/migrator.js'
import { startServer } from './server.js'
import { version } from './version.js'

const HELP = `latchkey ${version}: self-hosted authentication server

Usage: latchkey [command] [options]

Commands:
  serve     start the HTTP server (default); applies pending migrations first
  migrate   apply pending database migrations and exit
  cleanup   delete expired and revoked sessions once and exit

Options:
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
      options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
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
  if (extra.length > 0 || !['serve', 'migrate', 'cleanup'].includes(command)) {
    process.stderr.write(`latchkey: unknown command "${[command, ...extra].join(' ')}"\n\n${HELP}`)
    return 2
  }

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

  if (command === 'serve') {
    await startServer(config)
    return -1 // keep running until a signal
  }
  const database = openDatabase(config.database)
  try {
    const applied = await migrateToLatest(database.db)
    if (command === 'migrate') {
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
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
