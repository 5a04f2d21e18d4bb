// A client generated from the served /openapi.json, as a user would generate
// one: @hey-api/openapi-ts (offline, from the document the real server process
// serves), then a short program written against it
// (test/fixtures/openapi-client/client-script.ts) is type-checked with the
// project's TypeScript and run against that server: sign up, create tasks,
// page them, refresh, log out. Needs the built bundle (`npm run build`;
// `npm test` builds it first).
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { freePort, spawnServer, stopServer, untilHealthy } from './e2e/server-process.js'
import { tempDir, testDatabaseEnv } from './helper.js'

const run = promisify(execFile)
const ROOT = path.resolve(import.meta.dirname, '..')
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'openapi-client')
// The compiler's own script (its bin/tsc shim has no extension, which tap's child-process hooks trip on).
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'lib', 'tsc.js')

/** Runs node with `args` in `cwd`; on failure, the error says what the process printed. */
async function node(args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, args, {
      cwd,
      // Not tap's environment (its loaders): each child is a plain node process.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...env },
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    })
    return stdout
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`node ${args.join(' ')} failed:\n${stdout}\n${stderr}`)
  }
}

t.test('a client generated from /openapi.json signs up, pages tasks, refreshes and logs out', async (t) => {
  const server = spawnServer('openapi-client', {
    dataDir: tempDir(t),
    port: await freePort(),
    env: await testDatabaseEnv(t),
  })
  t.teardown(() => stopServer(server))
  await untilHealthy(server)

  // Inside the repository, so that the program resolves the project's packages (tsx, @types/node).
  const outputRoot = path.join(ROOT, 'test-output')
  mkdirSync(outputRoot, { recursive: true })
  const work = mkdtempSync(path.join(outputRoot, 'openapi-client-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))

  const document = await fetch(`${server.base}/openapi.json`)
  t.equal(document.status, 200)
  writeFileSync(path.join(work, 'openapi.json'), await document.text())
  await node([path.join(FIXTURES, 'generate.mjs'), 'openapi.json', 'generated'], work)

  // The program as written, less the first line that keeps the project's own type-check off it.
  const script = readFileSync(path.join(FIXTURES, 'client-script.ts'), 'utf8')
  t.match(script, /^\/\/ @ts-nocheck/, 'the fixture opts out of the project type-check only')
  writeFileSync(path.join(work, 'client-script.ts'), script.slice(script.indexOf('\n') + 1))
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  writeFileSync(
    path.join(work, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        // The generated fetch client names DOM types (BodyInit, RequestInit).
        lib: ['ES2023', 'DOM'],
        types: ['node'],
        strict: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
      },
      files: ['client-script.ts'],
    }),
  )
  await node([TSC, '-p', 'tsconfig.json'], work)
  t.pass('the program type-checks against the generated client')

  const output = await node(['--import', 'tsx', 'client-script.ts'], work, { LATCHKEY_URL: server.base })
  const seen = JSON.parse(output.trim().split('\n').pop() ?? '{}')
  t.match(seen, {
    signUpStatus: 201,
    userEmail: /^client-.*@example\.com$/,
    taken: 'EMAIL_TAKEN',
    created: ['first', 'second', 'third'],
    firstPage: ['third', 'second'],
    secondPage: ['first'],
    lastCursor: null,
    allTasks: 3,
    refreshStatus: 200,
    newAccessToken: true,
    refreshRotated: true,
    logOutStatus: 204,
    afterLogoutStatus: 401,
    afterLogoutCode: 'SESSION_REVOKED',
  })
  t.equal(seen.meEmail, seen.userEmail, 'the refreshed access token works')

  // A copy of the generated client, for a look when this fails.
  t.teardown(() => {
    if (t.passing()) return
    cpSync(path.join(work, 'generated'), path.join(outputRoot, 'openapi-client-last'), { recursive: true })
  })
})
