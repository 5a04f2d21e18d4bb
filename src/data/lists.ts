// Task lists: plain async functions over Kysely. Every query names the owner in its
// WHERE clause, so another user's list is indistinguishable from a missing one.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Keys } from '../auth/keys.js'
import type { Database, ListRow } from '../db/database.js'
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

type Db = Kysely<Database>

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

export async function createList(db: Db, userId: string, input: NewList, at: number): Promise<List> {
  const row: ListRow = {
    id: randomUUID(),
    user_id: userId,
    title: input.title,
    description: input.description ?? null,
    created_at: at,
    updated_at: at,
  }
  await db.insertInto('lists').values(row).execute()
  return toList(row)
}

export async function findList(db: Db, userId: string, id: string): Promise<List | undefined> {
  const row = await db
    .selectFrom('lists')
    .selectAll()
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return row && toList(row)
}

/** One page of the user's lists (exported for the query-plan test). */
export function listsPageQuery(db: Db, userId: string, limit: number, after?: CursorPosition) {
  return newestFirst(db.selectFrom('lists').selectAll().where('user_id', '=', userId), limit, after)
}

export async function pageLists(db: Db, keys: Keys, userId: string, page: PageRequest): Promise<Page<List>> {
  const scope = cursorScope('lists', userId)
  const after = page.cursor === undefined ? undefined : decodeCursor(keys, scope, page.cursor)
  const rows = await listsPageQuery(db, userId, page.limit, after).execute()
  return toPage(keys, scope, rows, page.limit, toList)
}

export async function updateList(
  db: Db,
  userId: string,
  id: string,
  changes: ListChanges,
  at: number,
): Promise<List | undefined> {
  const values: { updated_at: number; title?: string; description?: string | null } = { updated_at: at }
  if (changes.title !== undefined) values.title = changes.title
  if (changes.description !== undefined) values.description = changes.description
  // An empty PATCH changes nothing, not even updatedAt.
  if (Object.keys(values).length === 1) return findList(db, userId, id)
  const row = await db
    .updateTable('lists')
    .set(values)
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .returningAll()
    .executeTakeFirst()
  return row && toList(row)
}

/** Deletes the list and its tasks together; false if the user has no such list. */
export async function deleteList(db: Db, userId: string, id: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    // Explicit rather than left to the foreign-key cascade, which SQLite only
    // honours with a per-connection pragma.
    await trx.deleteFrom('tasks').where('user_id', '=', userId).where('list_id', '=', id).execute()
    const result = await trx.deleteFrom('lists').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
    return result.numDeletedRows > 0n
  })
}

/**
 * Whether `id` names one of the user's lists. Inside a transaction the row is
 * locked (PostgreSQL), so the list cannot be deleted before the task that
 * points at it is written.
 */
export async function ownsList(db: Db, userId: string, id: string): Promise<boolean> {
  const row = await db
    .selectFrom('lists')
    .select('id')
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .forUpdate()
    .executeTakeFirst()
  return row !== undefined
}
