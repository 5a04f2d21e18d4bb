// Deletes ended sessions and expired refresh tokens in small batches, one short
// transaction each, resting between batches so that other writers get the lock.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Store } from '../db/connection.js'
import { deleteEndedSessionsBatch } from './sessions.js'

/**
 * Rows per transaction. Each transaction holds the database's write lock, and
 * the server's own writes wait for it: 100 rows take about 10 ms on a 1M-session
 * database (ended sessions are scattered over the id index), 250 about 50 ms.
 */
export const CLEANUP_BATCH_SIZE = 100

/**
 * Deletes every row ended at `at`, batch by batch. After each batch it rests as
 * long as the batch took, so the write lock is free at least half the time: a
 * connection that writes meanwhile (the server's, while `latchkey cleanup` runs)
 * waits about one batch. Without the rest, SQLite's busy handler, which sleeps
 * and retries, kept missing the free moments and such a write waited up to a
 * second. Returns the rows deleted.
 */
export async function cleanupSessions(store: Store, at: number, batchSize = CLEANUP_BATCH_SIZE): Promise<number> {
  let deleted = 0
  for (;;) {
    const started = performance.now()
    const batch = deleteEndedSessionsBatch(store, at, batchSize)
    if (batch === 0) break
    deleted += batch
    await sleep(performance.now() - started)
  }
  return deleted
}
