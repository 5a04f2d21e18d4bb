// Second factors and passkeys (src/auth/totp.ts, recovery-codes.ts, passkeys.ts,
// challenges.ts).
// - totp_credentials: one per user; the secret is sealed like secret messages
//   (AES-256-GCM under the data key, the row's user as associated data).
//   `confirmed_at` is null while set-up waits for its first code;
//   `last_used_step` is the newest 30-second step a code was accepted for, so a
//   code (or an older one) is never accepted twice.
// - recovery_codes: only keyed hashes; using a code deletes its row.
// - passkeys: WebAuthn credentials (public key, signature counter).
// - auth_challenges: short-lived, single-use secrets that any instance can
//   finish: the mfaToken of a login waiting for its second factor, and WebAuthn
//   challenges. Stored as keyed hashes, deleted when used or expired.
// - sessions.sign_in_method: how the session was started (null for sessions
//   from before this migration).
import { type Kysely, PostgresAdapter } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and must not depend on today's table types
export async function up(db: Kysely<any>): Promise<void> {
  const binary = db.getExecutor().adapter instanceof PostgresAdapter ? 'bytea' : 'blob'
  await db.schema
    .createTable('totp_credentials')
    .addColumn('user_id', 'text', (col) => col.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('key_id', 'text', (col) => col.notNull())
    .addColumn('nonce', binary, (col) => col.notNull())
    .addColumn('ciphertext', binary, (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('confirmed_at', 'bigint')
    .addColumn('last_used_step', 'bigint')
    .execute()
  await db.schema
    .createTable('recovery_codes')
    .addColumn('code_hash', 'text', (col) => col.primaryKey())
    .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('recovery_codes_user_id').on('recovery_codes').column('user_id').execute()
  await db.schema
    .createTable('passkeys')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('credential_id', 'text', (col) => col.notNull().unique())
    .addColumn('public_key', binary, (col) => col.notNull())
    .addColumn('counter', 'bigint', (col) => col.notNull())
    .addColumn('transports', 'text')
    .addColumn('device_type', 'text', (col) => col.notNull())
    .addColumn('backed_up', 'integer', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute()
  await db.schema.createIndex('passkeys_user_id').on('passkeys').columns(['user_id', 'created_at']).execute()
  await db.schema
    .createTable('auth_challenges')
    .addColumn('challenge_hash', 'text', (col) => col.primaryKey())
    .addColumn('purpose', 'text', (col) => col.notNull())
    .addColumn('user_id', 'text', (col) => col.references('users.id').onDelete('cascade'))
    .addColumn('session_id', 'text')
    .addColumn('detail', 'text')
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('auth_challenges_expires_at').on('auth_challenges').column('expires_at').execute()
  await db.schema.alterTable('sessions').addColumn('sign_in_method', 'text').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sessions').dropColumn('sign_in_method').execute()
  await db.schema.dropTable('auth_challenges').execute()
  await db.schema.dropTable('passkeys').execute()
  await db.schema.dropTable('recovery_codes').execute()
  await db.schema.dropTable('totp_credentials').execute()
}
