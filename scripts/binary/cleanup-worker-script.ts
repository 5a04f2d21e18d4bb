// In the single binary, this module replaces src/auth/cleanup-worker-script.ts
// (scripts/build-binary.ts): the cleanup worker is the bundle of
// ./cleanup-worker.ts that the binary carries as a SEA asset, told where the
// main thread unpacked the native addons.
import { getAsset } from 'node:sea'
import type { WorkerScript } from '../../src/auth/cleanup-worker-script.js'
import { bundledPath } from './embedded.js'

/** The SEA asset key of the worker's bundle. */
export const CLEANUP_WORKER_ASSET = 'cleanup-worker.cjs'

export function cleanupWorkerScript(): WorkerScript {
  return { code: getAsset(CLEANUP_WORKER_ASSET, 'utf8'), workerData: { embeddedRoot: bundledPath('.') } }
}
