// Accounts: plain functions over the store. The API shape of a user never holds
// the password hash.
import { randomUUID } from 'node:crypto'
import type { Store } from '../db/connection.js'
import type { UserRow } from '../db/schema.js'
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

const isUniqueViolation = (error: unknown): boolean =>
  (error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' ||
  (error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY'

export function createUser(
  store: Store,
  input: { email: string; displayName: string | null; passwordHash: string },
  at: number,
): UserRecord {
  const user: UserRow = {
    id: randomUUID(),
    email: input.email,
    display_name: input.displayName,
    password_hash: input.passwordHash,
    created_at: at,
    updated_at: at,
  }
  try {
    store.run(store.db.insertInto('users').values(user))
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken()
    throw error
  }
  const { password_hash: _, ...record } = user
  return record
}

export function findUserByEmail(store: Store, email: string): UserRow | undefined {
  return store.get(store.db.selectFrom('users').selectAll().where('email', '=', email))
}

export function findUserById(store: Store, id: string): UserRow | undefined {
  return store.get(store.db.selectFrom('users').selectAll().where('id', '=', id))
}

export function updateUserProfile(
  store: Store,
  id: string,
  changes: { email?: string; displayName?: string | null },
  at: number,
): UserRecord | undefined {
  const values: { updated_at: number; email?: string; display_name?: string | null } = { updated_at: at }
  if (changes.email !== undefined) values.email = changes.email
  if (changes.displayName !== undefined) values.display_name = changes.displayName
  try {
    store.run(store.db.updateTable('users').set(values).where('id', '=', id))
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken()
    throw error
  }
  const user = findUserById(store, id)
  if (!user) return undefined
  const { password_hash: _, ...record } = user
  return record
}

export function setPasswordHash(store: Store, id: string, passwordHash: string, at: number): void {
  store.run(store.db.updateTable('users').set({ password_hash: passwordHash, updated_at: at }).where('id', '=', id))
}

/** Deletes the account; its sessions, tokens, lists, tasks and secrets go with it (foreign-key cascades). */
export function deleteUser(store: Store, id: string): boolean {
  return store.transaction(() => store.run(store.db.deleteFrom('users').where('id', '=', id)) > 0)
}
