// Operating latchkey: the per-user security event log and disabled accounts.
// - security_events: one row per event (sign-up, logins, logout, revocations,
//   password and email changes, ...), read newest first per user through the
//   (user_id, created_at, id) index. No foreign key to users: the
//   `account_deleted` event outlives its account (it holds the user id and
//   nothing else). `expires_at` is fixed when the event is written (its time
//   plus SECURITY_EVENT_RETENTION), so the session cleanup deletes old events
//   through the expires_at index without knowing the setting.
// - users.disabled_at: set by `latchkey users disable`; such an account cannot
//   sign in, refresh or use an access token.
import type { Kysely } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and must not depend on today's table types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('security_events')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('user_id', 'text', (col) => col.notNull())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('session_id', 'text')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema
    .createIndex('security_events_user_page')
    .on('security_events')
    .columns(['user_id', 'created_at', 'id'])
    .execute()
  await db.schema.createIndex('security_events_expires_at').on('security_events').column('expires_at').execute()
  await db.schema.alterTable('users').addColumn('disabled_at', 'bigint').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('disabled_at').execute()
  await db.schema.dropTable('security_events').execute()
}
