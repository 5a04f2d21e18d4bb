// The cleanup worker thread (started by startCleanupWorker in ./cleanup.ts): its
// own connection to the database file, the same batched deletion as in-thread,
// one result posted back, then the connection is closed and the thread ends. It
// stops after the current batch once its shared state says `stopping`.
import { parentPort, workerData } from 'node:worker_threads'
import { openDatabase } from '../db/dialect.js'
import { type CleanupJob, type CleanupResult, CleanupState, cleanupSessions } from './cleanup.js'

if (!parentPort) throw new Error('cleanup-worker runs in a worker thread (startCleanupWorker)')
const port = parentPort
const { file, busyTimeoutMs, at, batchSize, state: buffer } = workerData as CleanupJob
const state = new Int32Array(buffer)
const stopRequested = () => Atomics.load(state, 0) === CleanupState.stopping

async function run(): Promise<CleanupResult> {
  // Stopped while loading: the main thread may terminate this thread at any moment now.
  if (Atomics.compareExchange(state, 0, CleanupState.loading, CleanupState.running) !== CleanupState.loading) {
    return { deleted: 0, stopped: true }
  }
  const database = openDatabase({ kind: 'sqlite', file, busyTimeoutMs })
  try {
    const deleted = await cleanupSessions(database.db, at, batchSize, stopRequested)
    return { deleted, stopped: stopRequested() }
  } finally {
    await database.close()
  }
}

run().then(
  (result) => port.postMessage(result),
  (error: unknown) => {
    // Thrown outside the promise, so that it is the thread's uncaught error
    // whatever --unhandled-rejections says: the main thread gets it as the
    // Worker's 'error' event.
    setImmediate(() => {
      throw nativeError(error)
    })
  },
)

/**
 * Node passes only a native Error whole (name, message, stack, own properties
 * such as `code`) to the main thread; better-sqlite3's SqliteError is not one,
 * and would arrive as `{ code }` alone.
 */
function nativeError(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error))
  return Object.assign(new Error(error.message), error, { name: error.name, stack: error.stack })
}
