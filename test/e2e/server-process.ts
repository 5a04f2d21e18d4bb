// Starting the real server process the way `npm start` does (the built bundle,
// dist/latchkey.cjs, built by `npm test`'s pretest), for end-to-end tests that
// drive it with fetch. Spawning and waiting are separate, so several processes
// can be started at the same moment.
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import path from 'node:path'
import { TEST_ENV } from '../helper.js'

export const CLI = path.resolve(import.meta.dirname, '../../dist/latchkey.cjs')

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

export interface ServerProcess {
  name: string
  child: ChildProcess
  base: string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string
}

/** Spawns `latchkey serve` on 127.0.0.1:port with TEST_ENV under `env`; does not wait for it. */
export function spawnServer(
  name: string,
  options: { dataDir: string; port: number; env?: Record<string, string> },
): ServerProcess {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    cwd: options.dataDir,
    env: {
      PATH: process.env.PATH,
      ...TEST_ENV,
      LOG_LEVEL: 'info',
      DATA_DIR: options.dataDir,
      PORT: String(options.port),
      HOST: '127.0.0.1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (chunk) => {
    output += chunk
  })
  child.stderr?.on('data', (chunk) => {
    output += chunk
  })
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  )
  return { name, child, base: `http://127.0.0.1:${options.port}`, exit, output: () => output }
}

/** Polls GET /health until it answers 200; throws with the process's output if it exits or times out. */
export async function untilHealthy(server: ServerProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if ((await fetch(`${server.base}/health`)).status === 200) return
    } catch {}
    if (server.child.exitCode !== null || server.child.signalCode !== null || Date.now() > deadline) {
      throw new Error(`server ${server.name} did not start:\n${server.output()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Kills the process (SIGKILL unless told) and waits for it to exit. */
export async function stopServer(server: ServerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal)
  await server.exit
}

export const json = (body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
})

/** The raw (signed) value of the cookie `name` that the response set, if it set one. */
export function setCookieValue(response: Response, name: string): string | undefined {
  for (const cookie of response.headers.getSetCookie()) {
    const pair = cookie.split(';')[0] ?? ''
    const equals = pair.indexOf('=')
    if (pair.slice(0, equals) === name) return pair.slice(equals + 1)
  }
  return undefined
}

/**
 * The output lines of a process at or above the pino `level` (40 warn, 50 error,
 * 60 fatal); a line that is not a JSON log line (a crash on stderr) always counts.
 */
export function logLinesAtLeast(server: ServerProcess, level: number): string[] {
  return server
    .output()
    .split('\n')
    .slice(0, -1) // whole lines only
    .filter((line) => {
      if (line.trim() === '') return false
      try {
        const entry = JSON.parse(line) as { level?: unknown }
        return typeof entry.level !== 'number' || entry.level >= level
      } catch {
        return true
      }
    })
}
