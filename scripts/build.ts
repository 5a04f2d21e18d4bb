// `npm run build`: the server as `npm start` runs it, in dist/.
// - dist/app.cjs: src/cli.ts and everything it imports in one CommonJS file
//   (bundle/esbuild.ts), but the native addons (better-sqlite3, argon2), which
//   load from node_modules. Loading one file instead of about a thousand modules
//   takes a cold start from about 1.15 s to 0.55 s on a 2-core machine.
// - dist/cleanup-worker.cjs: the session cleanup's worker thread, bundled alike.
// - dist/latchkey.cjs: the launcher (bundle/launcher.ts), the package's bin,
//   whose #! line gives node `npm start`'s flags.
// - dist/app.cjs.cache: V8's code cache, written by a warm-up start of the
//   launcher with `npm start`'s node flags (on a temporary data directory,
//   answering /health once), which takes it on to about 0.33 s.
// Nothing in dist/ is committed.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import * as esbuild from 'esbuild'
import { ROUTES_AUTOLOAD } from '../src/app.js'
import { writeStamp } from './build-stamp.mjs'
import { CLEANUP_WORKER_BUNDLE } from './bundle/cleanup-worker-script.js'
import {
  BUNDLE_OPTIONS,
  cleanupWorkerScriptPlugin,
  ROOT,
  repositoryPathsPlugin,
  staticRoutesPlugin,
} from './bundle/esbuild.js'
import { writeRouteManifest } from './bundle/route-manifest.js'
import { startNodeFlags } from './start-node-flags.mjs'

const DIST = path.join(ROOT, 'dist')
const BUNDLE = path.join(import.meta.dirname, 'bundle')
/** The packages with native addons, loaded from node_modules. */
const NATIVE = ['better-sqlite3', 'argon2']
const WARM_UP_TIMEOUT_MS = 60_000

async function bundle(): Promise<void> {
  const manifestFile = path.join(DIST, 'bundle', 'routes.generated.ts')
  mkdirSync(path.dirname(manifestFile), { recursive: true })
  writeRouteManifest(ROUTES_AUTOLOAD, manifestFile)
  const shared = {
    ...BUNDLE_OPTIONS,
    external: NATIVE,
    // Smaller to read and hash at start (2.7 instead of 4.2 MB). Identifiers are
    // not minified, so stack traces still name their functions (Node maps no
    // source maps for code run through vm.Script, as the launcher does).
    minifyWhitespace: true,
    minifySyntax: true,
    // The launcher reads the bundle as Latin-1, which is exact for ASCII and
    // faster than decoding UTF-8.
    charset: 'ascii' as const,
    plugins: [
      staticRoutesPlugin(manifestFile),
      cleanupWorkerScriptPlugin(path.join(BUNDLE, 'cleanup-worker-script.ts')),
      repositoryPathsPlugin(path.join(BUNDLE, 'paths.ts')),
    ],
  }
  await Promise.all([
    esbuild.build({ ...shared, entryPoints: [path.join(ROOT, 'src', 'cli.ts')], outfile: path.join(DIST, 'app.cjs') }),
    esbuild.build({
      ...shared,
      entryPoints: [path.join(ROOT, 'src', 'auth', 'cleanup-worker.ts')],
      outfile: path.join(DIST, CLEANUP_WORKER_BUNDLE),
    }),
    esbuild.build({
      ...BUNDLE_OPTIONS,
      entryPoints: [path.join(BUNDLE, 'launcher.ts')],
      outfile: path.join(DIST, 'latchkey.cjs'),
      // Run as a command (the package's bin), it gets `npm start`'s node flags
      // too, so that V8 accepts the code cache.
      banner: { js: `#!/usr/bin/env -S node ${startNodeFlags().join(' ')}`.trimEnd() },
    }),
  ])
  chmodSync(path.join(DIST, 'latchkey.cjs'), 0o755)
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Starts dist/latchkey.cjs once, on a temporary data directory, to write dist/app.cjs.cache. */
async function writeCodeCache(): Promise<void> {
  const cacheFile = path.join(DIST, 'app.cjs.cache')
  rmSync(cacheFile, { force: true })
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'latchkey-build-'))
  const port = await freePort()
  const child = spawn(process.execPath, [...startNodeFlags(), path.join(DIST, 'latchkey.cjs'), 'serve'], {
    // No .env and none of the caller's configuration: the defaults, on a new data directory.
    cwd: dataDir,
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      LATCHKEY_WRITE_CODE_CACHE: '1',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  try {
    const deadline = Date.now() + WARM_UP_TIMEOUT_MS
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the warm-up start exited with code ${child.exitCode}`)
      if (Date.now() > deadline) throw new Error('the warm-up start did not answer /health in time')
      const status = await fetch(`http://127.0.0.1:${port}/health`).then(
        (response) => response.status,
        () => 0,
      )
      if (status === 200) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    child.kill('SIGTERM')
    const code = await exited
    if (code !== 0) throw new Error(`the warm-up start exited with code ${code}`)
    if (!existsSync(cacheFile)) throw new Error('the warm-up start wrote no code cache')
  } finally {
    child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
}

export async function build(): Promise<void> {
  await bundle()
  await writeCodeCache()
  writeStamp()
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  build().catch((error: unknown) => {
    process.stderr.write(`build: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  })
}
