// Passkeys: the WebAuthn credentials of each user (one user may have several;
// a credential id belongs to one user only). Ceremonies are in
// ./flows/passkeys.ts.
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { Database, PasskeyRow } from '../db/database.js'
import { isUniqueViolation } from '../db/errors.js'
import { toIso } from '../time.js'

type Db = Kysely<Database> | Transaction<Database>

/** The API shape of a passkey: never its key or counter. */
export interface PasskeyView {
  id: string
  name: string
  deviceType: string
  backedUp: boolean
  createdAt: string
  lastUsedAt: string | null
}

export const toPasskeyView = (row: PasskeyRow): PasskeyView => ({
  id: row.id,
  name: row.name,
  deviceType: row.device_type,
  backedUp: row.backed_up === 1,
  createdAt: toIso(row.created_at),
  lastUsedAt: row.last_used_at === null ? null : toIso(row.last_used_at),
})

export interface NewPasskey {
  userId: string
  credentialId: string
  publicKey: Uint8Array
  counter: number
  transports: string[] | undefined
  deviceType: string
  backedUp: boolean
  name: string
}

/** Stores a verified credential; undefined when that credential id is already registered (to anyone). */
export async function insertPasskey(db: Db, passkey: NewPasskey, at: number): Promise<PasskeyRow | undefined> {
  const row: PasskeyRow = {
    id: randomUUID(),
    user_id: passkey.userId,
    credential_id: passkey.credentialId,
    public_key: passkey.publicKey,
    counter: passkey.counter,
    transports: passkey.transports ? JSON.stringify(passkey.transports) : null,
    device_type: passkey.deviceType,
    backed_up: passkey.backedUp ? 1 : 0,
    name: passkey.name,
    created_at: at,
    last_used_at: null,
  }
  try {
    await db.insertInto('passkeys').values(row).execute()
  } catch (error) {
    if (isUniqueViolation(error)) return undefined
    throw error
  }
  return row
}

export async function findPasskeyByCredentialId(db: Db, credentialId: string): Promise<PasskeyRow | undefined> {
  return db.selectFrom('passkeys').selectAll().where('credential_id', '=', credentialId).executeTakeFirst()
}

export async function listPasskeys(db: Db, userId: string): Promise<PasskeyRow[]> {
  return db
    .selectFrom('passkeys')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at', 'asc')
    .orderBy('id', 'asc')
    .execute()
}

export async function renamePasskey(db: Db, userId: string, id: string, name: string): Promise<PasskeyRow | undefined> {
  await db.updateTable('passkeys').set({ name }).where('id', '=', id).where('user_id', '=', userId).execute()
  return db.selectFrom('passkeys').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
}

export async function deletePasskey(db: Db, userId: string, id: string): Promise<boolean> {
  const result = await db.deleteFrom('passkeys').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/**
 * Records a use: the authenticator's new counter, in one conditional update on
 * the counter it was checked against, so two concurrent uses of one signature
 * counter cannot both pass.
 */
export async function recordPasskeyUse(db: Db, passkey: PasskeyRow, newCounter: number, at: number): Promise<boolean> {
  const result = await db
    .updateTable('passkeys')
    .set({ counter: newCounter, last_used_at: at })
    .where('id', '=', passkey.id)
    .where('counter', '=', passkey.counter)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}
