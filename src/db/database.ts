// Table types: the one description of the database that Kysely checks every
// query against. Timestamps are milliseconds since the epoch (integers sort and
// compare the same way in SQLite and PostgreSQL); the API turns them into ISO 8601.
import type { Generated, Insertable, Selectable, Updateable } from 'kysely'

export interface UsersTable {
  id: string
  email: string
  display_name: string | null
  password_hash: string
  created_at: number
  updated_at: number
}

export interface SessionsTable {
  id: string
  user_id: string
  created_at: number
  last_used_at: number
  /** When the current refresh token runs out: the session is active until then. */
  expires_at: number
  /** The session's absolute end (`SESSION_MAX_AGE` after sign-in); rotation never passes it. */
  absolute_expires_at: number
  revoked_at: number | null
  user_agent: string | null
  ip: string | null
}

export interface RefreshTokensTable {
  /** Keyed hash of the token; the token itself is never stored. */
  token_hash: string
  session_id: string
  created_at: number
  expires_at: number
  /** Set when the token was rotated; presenting it again is reuse (after the grace window). */
  used_at: number | null
}

export interface ListsTable {
  id: string
  user_id: string
  title: string
  description: string | null
  created_at: number
  updated_at: number
}

export interface TasksTable {
  id: string
  user_id: string
  list_id: string | null
  title: string
  completed: Generated<number>
  due_at: number | null
  notes: string | null
  created_at: number
  updated_at: number
}

export interface SecretsTable {
  id: string
  user_id: string
  /** Identifies the data-encryption key, so keys can be rotated later. */
  key_id: string
  nonce: Uint8Array
  /** AES-256-GCM ciphertext followed by its 16-byte tag. */
  ciphertext: Uint8Array
  created_at: number
  updated_at: number
}

export interface Database {
  users: UsersTable
  sessions: SessionsTable
  refresh_tokens: RefreshTokensTable
  lists: ListsTable
  tasks: TasksTable
  secrets: SecretsTable
}

export type UserRow = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
export type SessionRow = Selectable<SessionsTable>
export type RefreshTokenRow = Selectable<RefreshTokensTable>
export type ListRow = Selectable<ListsTable>
export type TaskRow = Selectable<TasksTable>
export type SecretRow = Selectable<SecretsTable>
