// Device cookies (OWASP's device-cookie scheme for failed-login limits): one row
// per issued cookie, keyed by the keyed hash of its value, bound to its user.
// The cleanup deletes expired rows through the expires_at index; the user index
// serves the cascade on account deletion and the per-user cap.
import type { Kysely } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and must not depend on today's table types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('device_tokens')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('device_tokens_user_id').on('device_tokens').columns(['user_id', 'created_at']).execute()
  await db.schema.createIndex('device_tokens_expires_at').on('device_tokens').column('expires_at').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('device_tokens').execute()
}
