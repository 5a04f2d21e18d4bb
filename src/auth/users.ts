// Accounts: plain async functions over Kysely (a database or a transaction).
// The API shape of a user never holds the password hash.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Database, UserRow } from '../db/database.js'
import { isUniqueViolation } from '../db/errors.js'
import { AppError } from '../errors.js'
import { toIso } from '../time.js'

export interface PublicUser {
  id: string
  email: string
  displayName: string | null
  createdAt: string
  updatedAt: string
}

export type UserRecord = Omit<UserRow, 'password_hash'>

export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

export const toPublicUser = (user: UserRecord): PublicUser => ({
  id: user.id,
  email: user.email,
  displayName: user.display_name,
  createdAt: toIso(user.created_at),
  updatedAt: toIso(user.updated_at),
})

const emailTaken = () => new AppError(409, 'EMAIL_TAKEN', 'That email is already registered')

type Db = Kysely<Database>

export async function createUser(
  db: Db,
  input: { email: string; displayName: string | null; passwordHash: string },
  at: number,
): Promise<UserRecord> {
  const user: UserRow = {
    id: randomUUID(),
    email: input.email,
    display_name: input.displayName,
    password_hash: input.passwordHash,
    created_at: at,
    updated_at: at,
  }
  try {
    await db.insertInto('users').values(user).execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken()
    throw error
  }
  const { password_hash: _, ...record } = user
  return record
}

export function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst()
}

export function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function updateUserProfile(
  db: Db,
  id: string,
  changes: { email?: string; displayName?: string | null },
  at: number,
): Promise<UserRecord | undefined> {
  const values: { updated_at: number; email?: string; display_name?: string | null } = { updated_at: at }
  if (changes.email !== undefined) values.email = changes.email
  if (changes.displayName !== undefined) values.display_name = changes.displayName
  let user: UserRow | undefined
  try {
    user = await db.updateTable('users').set(values).where('id', '=', id).returningAll().executeTakeFirst()
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken()
    throw error
  }
  if (!user) return undefined
  const { password_hash: _, ...record } = user
  return record
}

export async function setPasswordHash(db: Db, id: string, passwordHash: string, at: number): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash, updated_at: at }).where('id', '=', id).execute()
}

/** Deletes the account; its sessions, tokens, lists, tasks and secrets go with it (foreign-key cascades). */
export async function deleteUser(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}
