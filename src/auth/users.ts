// Accounts: plain async functions over Kysely (a database or a transaction).
// The API shape of a user never holds the password hash. An address is
// verified while the user's email is the one recorded in email_verifications
// (a changed address is unverified until its own link is followed).
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database, UserRow } from '../db/database.js'
import { isUniqueViolation } from '../db/errors.js'
import { AppError } from '../errors.js'
import { toIso } from '../time.js'

export interface PublicUser {
  id: string
  email: string
  displayName: string | null
  emailVerified: boolean
  createdAt: string
  updatedAt: string
}

/** `email_verified` is there when the user was read with it (findUserBy*, withEmailVerified); absent counts as false. */
export type UserRecord = Omit<UserRow, 'password_hash'> & { email_verified?: boolean }

/** A user as read with its verification state. */
export type UserAccount = UserRow & { email_verified: boolean }

export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

export const toPublicUser = (user: UserRecord): PublicUser => ({
  id: user.id,
  email: user.email,
  displayName: user.display_name,
  emailVerified: user.email_verified === true,
  createdAt: toIso(user.created_at),
  updatedAt: toIso(user.updated_at),
})

const emailTaken = () => new AppError(409, 'EMAIL_TAKEN', 'That email is already registered')

type Db = Kysely<Database> | Transaction<Database>

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
    disabled_at: null,
  }
  try {
    await db.insertInto('users').values(user).execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw emailTaken()
    throw error
  }
  const { password_hash: _, ...record } = user
  return { ...record, email_verified: false }
}

/** Users with their verification state: verified while the recorded address is still theirs. */
const usersWithVerification = (db: Db) =>
  db
    .selectFrom('users')
    .leftJoin('email_verifications', (join) =>
      join.onRef('email_verifications.user_id', '=', 'users.id').onRef('email_verifications.email', '=', 'users.email'),
    )
    .selectAll('users')
    .select('email_verifications.verified_at')

const toAccount = ({ verified_at, ...user }: UserRow & { verified_at: number | null }): UserAccount => ({
  ...user,
  email_verified: verified_at !== null,
})

export async function findUserByEmail(db: Db, email: string): Promise<UserAccount | undefined> {
  const row = await usersWithVerification(db).where('users.email', '=', email).executeTakeFirst()
  return row && toAccount(row)
}

export async function findUserById(db: Db, id: string): Promise<UserAccount | undefined> {
  const row = await usersWithVerification(db).where('users.id', '=', id).executeTakeFirst()
  return row && toAccount(row)
}

/** Whether the user's current address is verified (false for no such user). */
export async function isEmailVerified(db: Db, userId: string): Promise<boolean> {
  return (await findUserById(db, userId))?.email_verified === true
}

/** The record with its verification state read, for a record that came without it. */
export async function withEmailVerified(db: Db, user: UserRecord): Promise<UserRecord> {
  if (user.email_verified !== undefined) return user
  const row = await db
    .selectFrom('email_verifications')
    .select('email')
    .where('user_id', '=', user.id)
    .executeTakeFirst()
  return { ...user, email_verified: row?.email === user.email }
}

/** Records that the user proved to receive mail at `email` (a link mailed there was followed). */
export async function markEmailVerified(db: Db, userId: string, email: string, at: number): Promise<void> {
  await db
    .insertInto('email_verifications')
    .values({ user_id: userId, email, verified_at: at })
    .onConflict((conflict) => conflict.column('user_id').doUpdateSet({ email, verified_at: at }))
    .execute()
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
  return withEmailVerified(db, record)
}

export async function setPasswordHash(db: Db, id: string, passwordHash: string, at: number): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash, updated_at: at }).where('id', '=', id).execute()
}

/** Deletes the account; its sessions, tokens, lists, tasks and secrets go with it (foreign-key cascades). */
export async function deleteUser(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}
