// The cleanup worker thread (started by startCleanupWorker in ./cleanup.ts): its
// own connection to the database file, the same batched deletion as in-thread,
// one result posted back, then the connection is closed and the thread ends. A
// 'stop' message ends it after the current batch.
import { parentPort, workerData } from 'node:worker_threads'
import { openStore } from '../db/connection.js'
import { type CleanupJob, type CleanupResult, cleanupSessions } from './cleanup.js'

if (!parentPort) throw new Error('cleanup-worker runs in a worker thread (startCleanupWorker)')
const port = parentPort
const { file, at, batchSize } = workerData as CleanupJob

const stop = new AbortController()
port.on('message', (message) => {
  if (message === 'stop') stop.abort()
})
// Listening must not keep the thread alive once the work is done.
port.unref()

async function run(): Promise<CleanupResult> {
  const store = openStore(file)
  try {
    const deleted = await cleanupSessions(store, at, batchSize, stop.signal)
    return { deleted, stopped: stop.signal.aborted }
  } finally {
    await store.close()
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
