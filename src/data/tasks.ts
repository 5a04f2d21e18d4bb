// Tasks: plain async functions over Kysely. Every query names the owner in its
// WHERE clause; a task may only point at one of its owner's own lists
// (400 INVALID_LIST), checked in the same transaction as the write.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Keys } from '../auth/keys.js'
import type { Database, TaskRow } from '../db/database.js'
import { AppError } from '../errors.js'
import { toIso, toIsoOrNull } from '../time.js'
import {
  type CursorPosition,
  cursorScope,
  decodeCursor,
  newestFirst,
  type Page,
  type PageRequest,
  toPage,
} from './cursor.js'
import { ownsList } from './lists.js'

type Db = Kysely<Database>

export interface Task {
  id: string
  title: string
  completed: boolean
  listId: string | null
  dueAt: string | null
  notes: string | null
  createdAt: string
  updatedAt: string
}

export interface NewTask {
  title: string
  completed?: boolean | undefined
  listId?: string | null | undefined
  /** ISO 8601 date-time. */
  dueAt?: string | null | undefined
  notes?: string | null | undefined
}

export type TaskChanges = Partial<NewTask>

export interface TaskFilters {
  listId?: string | undefined
  completed?: boolean | undefined
}

type TaskValues = Omit<Partial<TaskRow>, 'id' | 'user_id' | 'created_at'> & { updated_at: number }

export const toTask = (row: TaskRow): Task => ({
  id: row.id,
  title: row.title,
  completed: row.completed === 1,
  listId: row.list_id,
  dueAt: toIsoOrNull(row.due_at),
  notes: row.notes,
  createdAt: toIso(row.created_at),
  updatedAt: toIso(row.updated_at),
})

const invalidList = () =>
  new AppError(400, 'INVALID_LIST', 'listId does not name one of your lists', [
    { field: 'listId', message: 'is not one of your lists' },
  ])

/** Epoch ms of an ISO 8601 date-time; the schema checked its shape, this catches what Date cannot hold. */
function parseDueAt(value: string): number {
  const ms = Date.parse(value)
  if (!Number.isFinite(ms)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'The request is not valid', [
      { field: 'dueAt', message: 'is not a valid date-time' },
    ])
  }
  return ms
}

/** The row columns a create or PATCH body sets (bar updated_at); listId is checked against the owner. */
async function valuesOf(db: Db, userId: string, input: TaskChanges, at: number): Promise<TaskValues> {
  const values: TaskValues = { updated_at: at }
  if (input.title !== undefined) values.title = input.title
  if (input.completed !== undefined) values.completed = input.completed ? 1 : 0
  if (input.listId !== undefined) {
    if (input.listId !== null && !(await ownsList(db, userId, input.listId))) throw invalidList()
    values.list_id = input.listId
  }
  if (input.dueAt !== undefined) values.due_at = input.dueAt === null ? null : parseDueAt(input.dueAt)
  if (input.notes !== undefined) values.notes = input.notes
  return values
}

export async function createTask(db: Db, userId: string, input: NewTask, at: number): Promise<Task> {
  // Without a list there is nothing to check: no transaction needed.
  const write = async (trx: Db) => {
    const values = await valuesOf(trx, userId, input, at)
    const row: TaskRow = {
      id: randomUUID(),
      user_id: userId,
      list_id: values.list_id ?? null,
      title: input.title,
      completed: values.completed ?? 0,
      due_at: values.due_at ?? null,
      notes: values.notes ?? null,
      created_at: at,
      updated_at: at,
    }
    await trx.insertInto('tasks').values(row).execute()
    return toTask(row)
  }
  if (input.listId === undefined || input.listId === null) return write(db)
  return db.transaction().execute(write)
}

function findTaskRow(db: Db, userId: string, id: string, lock = false): Promise<TaskRow | undefined> {
  return db
    .selectFrom('tasks')
    .selectAll()
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .$if(lock, (query) => query.forUpdate())
    .executeTakeFirst()
}

export async function findTask(db: Db, userId: string, id: string): Promise<Task | undefined> {
  const row = await findTaskRow(db, userId, id)
  return row && toTask(row)
}

/**
 * One page of the user's tasks (exported for the query-plan test). Each filter
 * combination has an index that starts with its equality columns and ends with
 * (created_at, id), so the page is one index range read in order.
 */
export function tasksPageQuery(db: Db, userId: string, filters: TaskFilters, limit: number, after?: CursorPosition) {
  let query = db.selectFrom('tasks').selectAll().where('user_id', '=', userId)
  if (filters.listId !== undefined) query = query.where('list_id', '=', filters.listId)
  if (filters.completed !== undefined) query = query.where('completed', '=', filters.completed ? 1 : 0)
  return newestFirst(query, limit, after)
}

export async function pageTasks(
  db: Db,
  keys: Keys,
  userId: string,
  filters: TaskFilters,
  page: PageRequest,
): Promise<Page<Task>> {
  const scope = cursorScope('tasks', userId, filters.listId, filters.completed)
  const after = page.cursor === undefined ? undefined : decodeCursor(keys, scope, page.cursor)
  const rows = await tasksPageQuery(db, userId, filters, page.limit, after).execute()
  return toPage(keys, scope, rows, page.limit, toTask)
}

/** Applies a PATCH; undefined if the user has no such task (checked before the list, so 404 wins). */
export async function updateTask(
  db: Db,
  userId: string,
  id: string,
  changes: TaskChanges,
  at: number,
): Promise<Task | undefined> {
  return db.transaction().execute(async (trx) => {
    const current = await findTaskRow(trx, userId, id, true)
    if (!current) return undefined
    const values = await valuesOf(trx, userId, changes, at)
    // An empty PATCH changes nothing, not even updatedAt.
    if (Object.keys(values).length === 1) return toTask(current)
    const row = await trx
      .updateTable('tasks')
      .set(values)
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .returningAll()
      .executeTakeFirst()
    return row && toTask(row)
  })
}

export async function deleteTask(db: Db, userId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('tasks').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
  return result.numDeletedRows > 0n
}
