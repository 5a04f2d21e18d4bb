// Keyset pagination. A page is read newest first by (created_at desc, id desc),
// starting strictly after a position, so rows inserted meanwhile never shift
// later pages (no duplicates, no gaps). "After" is the row value
// (created_at, id) < (?, ?), which SQLite and PostgreSQL both read as one range
// of a (user_id, ..., created_at, id) index. The cursor carries the position and
// is opaque: base64url of a version byte, created_at, id and an HMAC tag over the
// query's scope (resource, user, filters). A cursor the server did not issue for
// this very query is refused as 400 INVALID_CURSOR before any SQL runs.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { type SelectQueryBuilder, sql } from 'kysely'
import type { Keys } from '../auth/keys.js'
import type { Database } from '../db/database.js'
import { AppError } from '../errors.js'

export interface CursorPosition {
  createdAt: number
  id: string
}

export interface PageRequest {
  limit: number
  cursor?: string | undefined
}

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

const VERSION = 1
const CREATED_AT_BYTES = 6
const TAG_BYTES = 16
const MAX_ID_BYTES = 64
const HEADER_BYTES = 1 + CREATED_AT_BYTES
const BASE64URL = /^[A-Za-z0-9_-]+$/

const tagOf = (keys: Keys, scope: string, body: Buffer): Buffer =>
  createHmac('sha256', keys.pageCursor).update(scope).update('\0').update(body).digest().subarray(0, TAG_BYTES)

const invalidCursor = () =>
  new AppError(400, 'INVALID_CURSOR', 'The cursor is not valid for this query', [
    { field: 'cursor', message: 'is not a cursor issued for this query' },
  ])

export function encodeCursor(keys: Keys, scope: string, position: CursorPosition): string {
  const id = Buffer.from(position.id, 'utf8')
  const body = Buffer.alloc(HEADER_BYTES + id.length)
  body.writeUInt8(VERSION, 0)
  body.writeUIntBE(position.createdAt, 1, CREATED_AT_BYTES)
  id.copy(body, HEADER_BYTES)
  return Buffer.concat([body, tagOf(keys, scope, body)]).toString('base64url')
}

/** The position a cursor names; throws 400 INVALID_CURSOR for anything not issued for `scope`. */
export function decodeCursor(keys: Keys, scope: string, cursor: string): CursorPosition {
  if (!BASE64URL.test(cursor)) throw invalidCursor()
  const bytes = Buffer.from(cursor, 'base64url')
  // Buffer.from skips stray characters and trailing bits; only the canonical spelling counts.
  if (bytes.toString('base64url') !== cursor) throw invalidCursor()
  const idLength = bytes.length - HEADER_BYTES - TAG_BYTES
  if (idLength < 1 || idLength > MAX_ID_BYTES || bytes[0] !== VERSION) throw invalidCursor()
  const body = bytes.subarray(0, bytes.length - TAG_BYTES)
  const tag = bytes.subarray(bytes.length - TAG_BYTES)
  if (!timingSafeEqual(tag, tagOf(keys, scope, body))) throw invalidCursor()
  return {
    createdAt: body.readUIntBE(1, CREATED_AT_BYTES),
    id: body.subarray(HEADER_BYTES).toString('utf8'),
  }
}

/**
 * Turns `limit + 1` rows (the extra one only says whether another page exists)
 * into a page whose cursor points after its last item.
 */
export function toPage<Row extends { created_at: number; id: string }, Item>(
  keys: Keys,
  scope: string,
  rows: Row[],
  limit: number,
  toItem: (row: Row) => Item,
): Page<Item> {
  const pageRows = rows.slice(0, limit)
  const last = pageRows.at(-1)
  return {
    items: pageRows.map(toItem),
    nextCursor:
      rows.length > limit && last ? encodeCursor(keys, scope, { createdAt: last.created_at, id: last.id }) : null,
  }
}

/** Scope string binding a cursor to one resource, one user and one set of filters. */
export const cursorScope = (...parts: Array<string | number | boolean | null | undefined>): string =>
  JSON.stringify(parts.map((part) => part ?? null))

/**
 * A page query's order and range: newest first, one row more than the page
 * (see toPage), strictly after `after` when there is a cursor.
 */
export function newestFirst<T extends 'lists' | 'tasks' | 'secrets', O>(
  query: SelectQueryBuilder<Database, T, O>,
  limit: number,
  after: CursorPosition | undefined,
): SelectQueryBuilder<Database, T, O> {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`page limit ${limit} is not a positive integer`)
  const ordered = query
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    // The LIMIT is written into the SQL, not bound: SQLite plans with a bound
    // LIMIT's value, so binding one re-prepares the statement on every run (about
    // a sixth of a page query's time). Each page size is one cached statement.
    .limit(sql.lit(limit + 1))
  if (!after) return ordered
  // A row-value comparison: the same SQL, and one index range, in SQLite and PostgreSQL.
  return ordered.where(sql<boolean>`(${sql.ref('created_at')}, ${sql.ref('id')}) < (${after.createdAt}, ${after.id})`)
}
