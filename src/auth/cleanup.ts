// Deletes ended sessions and expired refresh tokens in small batches, yielding
// to the event loop between batches so requests are never stalled for long.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { Store } from '../db/connection.js'
import { deleteEndedSessionsBatch } from './sessions.js'

export async function cleanupSessions(store: Store, at: number, batchSize = 250): Promise<number> {
  let deleted = 0
  for (;;) {
    const batch = deleteEndedSessionsBatch(store, at, batchSize)
    if (batch === 0) return deleted
    deleted += batch
    await yieldToEventLoop()
  }
}
