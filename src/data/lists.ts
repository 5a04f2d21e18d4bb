// Task lists: plain functions over the store. Every query names the owner in its
// WHERE clause, so another user's list is indistinguishable from a missing one.
import { randomUUID } from 'node:crypto'
import type { Keys } from '../auth/keys.js'
import type { Store } from '../db/connection.js'
import type { ListRow } from '../db/schema.js'
import { toIso } from '../time.js'
import {
  type CursorPosition,
  cursorScope,
  decodeCursor,
  newestFirst,
  type Page,
  type PageRequest,
  toPage,
} from './cursor.js'

export interface List {
  id: string
  title: string
  description: string | null
  createdAt: string
  updatedAt: string
}

export interface NewList {
  title: string
  description?: string | null | undefined
}

export type ListChanges = Partial<NewList>

export const toList = (row: ListRow): List => ({
  id: row.id,
  title: row.title,
  description: row.description,
  createdAt: toIso(row.created_at),
  updatedAt: toIso(row.updated_at),
})

export function createList(store: Store, userId: string, input: NewList, at: number): List {
  const row: ListRow = {
    id: randomUUID(),
    user_id: userId,
    title: input.title,
    description: input.description ?? null,
    created_at: at,
    updated_at: at,
  }
  store.run(store.db.insertInto('lists').values(row))
  return toList(row)
}

export function findList(store: Store, userId: string, id: string): List | undefined {
  const row = store.get(store.db.selectFrom('lists').selectAll().where('id', '=', id).where('user_id', '=', userId))
  return row && toList(row)
}

/** One page of the user's lists (exported for the query-plan test). */
export function listsPageQuery(store: Store, userId: string, limit: number, after?: CursorPosition) {
  return newestFirst(store.db.selectFrom('lists').selectAll().where('user_id', '=', userId), limit, after)
}

export function pageLists(store: Store, keys: Keys, userId: string, page: PageRequest): Page<List> {
  const scope = cursorScope('lists', userId)
  const after = page.cursor === undefined ? undefined : decodeCursor(keys, scope, page.cursor)
  return toPage(keys, scope, store.all(listsPageQuery(store, userId, page.limit, after)), page.limit, toList)
}

export function updateList(
  store: Store,
  userId: string,
  id: string,
  changes: ListChanges,
  at: number,
): List | undefined {
  const values: { updated_at: number; title?: string; description?: string | null } = { updated_at: at }
  if (changes.title !== undefined) values.title = changes.title
  if (changes.description !== undefined) values.description = changes.description
  // An empty PATCH changes nothing, not even updatedAt.
  if (Object.keys(values).length === 1) return findList(store, userId, id)
  const row = store.get(
    store.db.updateTable('lists').set(values).where('id', '=', id).where('user_id', '=', userId).returningAll(),
  )
  return row && toList(row)
}

/** Deletes the list and its tasks together; false if the user has no such list. */
export function deleteList(store: Store, userId: string, id: string): boolean {
  return store.transaction(() => {
    // Explicit rather than left to the foreign-key cascade, which SQLite only
    // honours with a per-connection pragma.
    store.run(store.db.deleteFrom('tasks').where('user_id', '=', userId).where('list_id', '=', id))
    return store.run(store.db.deleteFrom('lists').where('id', '=', id).where('user_id', '=', userId)) > 0
  })
}

/** Whether `id` names one of the user's lists. */
export function ownsList(store: Store, userId: string, id: string): boolean {
  return (
    store.get(store.db.selectFrom('lists').select('id').where('id', '=', id).where('user_id', '=', userId)) !==
    undefined
  )
}
