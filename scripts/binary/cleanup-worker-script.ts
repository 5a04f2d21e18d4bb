// In the single binary, this module replaces src/auth/cleanup-worker-script.ts
// (scripts/build-binary.ts): the cleanup worker is the bundle of
// ./cleanup-worker.ts that the binary carries as a SEA asset, told where the
// main thread unpacked its files and by which names it loads the verified addons.
import { getAsset } from 'node:sea'
import type { WorkerScript } from '../../src/auth/cleanup-worker-script.js'
import { unpackedFiles } from './embedded.js'

/** The SEA asset key of the worker's bundle. */
export const CLEANUP_WORKER_ASSET = 'cleanup-worker.cjs'

export function cleanupWorkerScript(): WorkerScript {
  return { code: getAsset(CLEANUP_WORKER_ASSET, 'utf8'), workerData: { embedded: unpackedFiles() } }
}
