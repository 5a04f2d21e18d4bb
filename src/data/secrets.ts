// Secret messages: title and message are sealed together (AES-256-GCM, see
// crypto.ts), so the database holds neither in clear. The associated data binds
// each ciphertext to its user and row id. Every query names the owner in its
// WHERE clause, so another user's secret is indistinguishable from a missing one.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Keys } from '../auth/keys.js'
import type { Database, SecretRow } from '../db/database.js'
import { toIso } from '../time.js'
import { open, seal } from './crypto.js'
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

export interface Secret {
  id: string
  title: string | null
  message: string
  createdAt: string
  updatedAt: string
}

export interface NewSecret {
  message: string
  title?: string | null | undefined
}

export type SecretChanges = Partial<NewSecret>

interface SecretContent {
  title: string | null
  message: string
}

const associatedData = (userId: string, id: string): string => JSON.stringify(['latchkey secret v1', userId, id])

function sealContent(keys: Keys, userId: string, id: string, content: SecretContent) {
  const sealed = seal(keys, associatedData(userId, id), JSON.stringify(content))
  return { key_id: sealed.keyId, nonce: sealed.nonce, ciphertext: sealed.ciphertext }
}

function openContent(keys: Keys, row: SecretRow): SecretContent {
  const plaintext = open(keys, associatedData(row.user_id, row.id), {
    keyId: row.key_id,
    nonce: Buffer.from(row.nonce),
    ciphertext: Buffer.from(row.ciphertext),
  })
  const content: unknown = JSON.parse(plaintext)
  // Authenticated, so written by us; checked anyway so that a bug can never leak a wrong shape.
  if (
    typeof content !== 'object' ||
    content === null ||
    !('message' in content) ||
    typeof content.message !== 'string' ||
    !('title' in content) ||
    (content.title !== null && typeof content.title !== 'string')
  ) {
    throw new Error('secret plaintext has an unexpected shape')
  }
  return { title: content.title, message: content.message }
}

const toSecret = (row: SecretRow, content: SecretContent): Secret => ({
  id: row.id,
  title: content.title,
  message: content.message,
  createdAt: toIso(row.created_at),
  updatedAt: toIso(row.updated_at),
})

export async function createSecret(db: Db, keys: Keys, userId: string, input: NewSecret, at: number): Promise<Secret> {
  const id = randomUUID()
  const content: SecretContent = { title: input.title ?? null, message: input.message }
  const row: SecretRow = {
    id,
    user_id: userId,
    ...sealContent(keys, userId, id, content),
    created_at: at,
    updated_at: at,
  }
  await db.insertInto('secrets').values(row).execute()
  return toSecret(row, content)
}

function findSecretRow(db: Db, userId: string, id: string, lock = false): Promise<SecretRow | undefined> {
  return db
    .selectFrom('secrets')
    .selectAll()
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .$if(lock, (query) => query.forUpdate())
    .executeTakeFirst()
}

export async function findSecret(db: Db, keys: Keys, userId: string, id: string): Promise<Secret | undefined> {
  const row = await findSecretRow(db, userId, id)
  return row && toSecret(row, openContent(keys, row))
}

/** One page of the user's secrets (exported for the query-plan test). */
export function secretsPageQuery(db: Db, userId: string, limit: number, after?: CursorPosition) {
  return newestFirst(db.selectFrom('secrets').selectAll().where('user_id', '=', userId), limit, after)
}

export async function pageSecrets(db: Db, keys: Keys, userId: string, page: PageRequest): Promise<Page<Secret>> {
  const scope = cursorScope('secrets', userId)
  const after = page.cursor === undefined ? undefined : decodeCursor(keys, scope, page.cursor)
  const rows = await secretsPageQuery(db, userId, page.limit, after).execute()
  return toPage(keys, scope, rows, page.limit, (row) => toSecret(row, openContent(keys, row)))
}

/** Applies a PATCH: opens the current content, merges, and seals it again under a fresh nonce. */
export async function updateSecret(
  db: Db,
  keys: Keys,
  userId: string,
  id: string,
  changes: SecretChanges,
  at: number,
): Promise<Secret | undefined> {
  return db.transaction().execute(async (trx) => {
    const current = await findSecretRow(trx, userId, id, true)
    if (!current) return undefined
    const before = openContent(keys, current)
    // An empty PATCH changes nothing, not even updatedAt.
    if (changes.title === undefined && changes.message === undefined) return toSecret(current, before)
    const content: SecretContent = {
      title: changes.title === undefined ? before.title : changes.title,
      message: changes.message ?? before.message,
    }
    const row = await trx
      .updateTable('secrets')
      .set({ ...sealContent(keys, userId, id, content), updated_at: at })
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .returningAll()
      .executeTakeFirst()
    return row && toSecret(row, content)
  })
}

export async function deleteSecret(db: Db, userId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('secrets').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
  return result.numDeletedRows > 0n
}
