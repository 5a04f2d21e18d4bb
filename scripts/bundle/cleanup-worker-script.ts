// In dist/app.cjs, this module replaces src/auth/cleanup-worker-script.ts
// (scripts/build.ts): the cleanup worker is the bundle dist/cleanup-worker.cjs,
// beside the server's bundle.
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { WorkerScript } from '../../src/auth/cleanup-worker-script.js'

/** The worker's bundle, in dist/ beside the bundle this module is part of. */
export const CLEANUP_WORKER_BUNDLE = 'cleanup-worker.cjs'

export function cleanupWorkerScript(): WorkerScript {
  return { code: `import(${JSON.stringify(pathToFileURL(path.join(__dirname, CLEANUP_WORKER_BUNDLE)).href)})` }
}
