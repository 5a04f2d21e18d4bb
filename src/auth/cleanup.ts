// Deletes ended sessions and expired refresh tokens in small batches, one short
// transaction each. The scheduled run does it in a worker thread with its own
// connection to the same file (./cleanup-worker.ts), so the server's event loop
// never waits on the deletes, their disk syncs or the WAL checkpoints they cause;
// `latchkey cleanup`, a one-shot command, runs the same loop in its own thread.
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import type { Kysely } from 'kysely'
import type { Database } from '../db/database.js'
import { cleanupWorkerScript } from './cleanup-worker-script.js'
import { deleteEndedSessionsBatch } from './sessions.js'

/**
 * Rows per transaction. Each transaction holds the database's write lock, and
 * the server's own writes wait for it: 100 rows take about 10 ms on a 1M-session
 * database (ended sessions are scattered over the id index), 250 about 50 ms.
 */
export const CLEANUP_BATCH_SIZE = 100

/** How long a stopped worker may take to finish its batch and exit before it is terminated. */
const STOP_GRACE_MS = 5_000

/**
 * Deletes every row ended at `at`, batch by batch. After each batch it rests as
 * long as the batch took, so the write lock is free at least half the time: a
 * connection that writes meanwhile (the server's, while this runs in a worker
 * thread or in `latchkey cleanup`) waits about one batch. Without the rest,
 * SQLite's busy handler, which sleeps and retries, kept missing the free moments
 * and such a write waited up to a second. Stops early, between batches, once
 * `stopRequested()` says so. Returns the rows deleted.
 */
export async function cleanupSessions(
  db: Kysely<Database>,
  at: number,
  batchSize = CLEANUP_BATCH_SIZE,
  stopRequested: () => boolean = () => false,
): Promise<number> {
  let deleted = 0
  while (!stopRequested()) {
    const started = performance.now()
    const batch = await deleteEndedSessionsBatch(db, at, batchSize)
    if (batch === 0) break
    deleted += batch
    await sleep(performance.now() - started)
  }
  return deleted
}

/**
 * A worker's state, one Int32 in a SharedArrayBuffer that both threads change
 * atomically: the worker starts work only if it is still `loading`, so a stop
 * that finds it loading can terminate it at once, before it opens the database.
 */
export const CleanupState = { loading: 0, running: 1, stopping: 2 } as const

/** What the worker thread is given. */
export interface CleanupJob {
  file: string
  busyTimeoutMs: number
  at: number
  batchSize: number
  /** An Int32Array's buffer holding a CleanupState. */
  state: SharedArrayBuffer
}

/** What the worker thread posts back once, before it exits. */
export interface CleanupResult {
  deleted: number
  /** True when it was stopped before it had deleted everything. */
  stopped: boolean
}

export interface CleanupRun {
  /** Settles when the worker has exited; rejects with its error. */
  readonly done: Promise<CleanupResult>
  /** Stops the worker after its current batch (terminates it after a grace period); resolves once it has exited. */
  stop(): Promise<void>
}

/** Runs `cleanupSessions` on the SQLite file in a new worker thread. */
export function startCleanupWorker(
  database: { file: string; busyTimeoutMs: number },
  at: number,
  batchSize = CLEANUP_BATCH_SIZE,
): CleanupRun {
  const script = cleanupWorkerScript()
  const shared = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT)
  const state = new Int32Array(shared)
  const job: CleanupJob = { file: database.file, busyTimeoutMs: database.busyTimeoutMs, at, batchSize, state: shared }
  const worker = new Worker(script.code, { eval: true, workerData: { ...script.workerData, ...job } })
  let result: CleanupResult | undefined
  let failure: unknown
  worker.on('message', (message: CleanupResult) => {
    result = message
  })
  worker.on('error', (error) => {
    failure = error
  })
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve))
  let terminated = false
  const done = exited.then((code) => {
    if (failure !== undefined) throw failure
    if (result !== undefined) return result
    if (terminated) throw new Error(`the cleanup worker did not stop within ${STOP_GRACE_MS} ms and was terminated`)
    throw new Error(`the cleanup worker exited with code ${code} without a result`)
  })
  let stopping: Promise<void> | undefined
  return {
    done,
    stop() {
      stopping ??= (async () => {
        if (Atomics.exchange(state, 0, CleanupState.stopping) === CleanupState.loading) {
          // It has not touched the database and never will: no need to wait for it to load.
          result = { deleted: 0, stopped: true }
          await worker.terminate()
          return
        }
        const grace = setTimeout(() => {
          terminated = true
          void worker.terminate()
        }, STOP_GRACE_MS)
        await exited
        clearTimeout(grace)
      })()
      return stopping
    },
  }
}
