// Email flows: verified addresses, one-time tokens and the durable mail queue.
// - email_verifications: one row per user naming the address that was proven
//   (a user whose address changed since is not verified); a table of its own
//   so the users table keeps the schema every release has given it.
// - one_time_tokens: keyed hashes of the tokens in verification, reset,
//   email-change and sign-in mails, bound to purpose, user and address.
// - mail_queue: mails to send, as jobs that hold no token (the sender makes the
//   token when it writes the mail); `next_attempt_at` is both the schedule and
//   the lease of a claimed row, null once the mail has been given up.
import type { Kysely } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and must not depend on today's table types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('email_verifications')
    .addColumn('user_id', 'text', (col) => col.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('verified_at', 'bigint', (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('one_time_tokens')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('purpose', 'text', (col) => col.notNull())
    .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('expires_at', 'bigint', (col) => col.notNull())
    .execute()
  await db.schema
    .createIndex('one_time_tokens_user_purpose')
    .on('one_time_tokens')
    .columns(['user_id', 'purpose'])
    .execute()
  await db.schema.createIndex('one_time_tokens_expires_at').on('one_time_tokens').column('expires_at').execute()

  await db.schema
    .createTable('mail_queue')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('purpose', 'text', (col) => col.notNull())
    .addColumn('recipient', 'text', (col) => col.notNull())
    .addColumn('user_id', 'text', (col) => col.references('users.id').onDelete('cascade'))
    .addColumn('payload', 'text', (col) => col.notNull())
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint')
    .addColumn('claim_id', 'text')
    .addColumn('last_error', 'text')
    .addColumn('failed_at', 'bigint')
    .execute()
  await db.schema.createIndex('mail_queue_next_attempt_at').on('mail_queue').column('next_attempt_at').execute()
  await db.schema.createIndex('mail_queue_user_id').on('mail_queue').column('user_id').execute()
  await db.schema.createIndex('mail_queue_failed_at').on('mail_queue').column('failed_at').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mail_queue').execute()
  await db.schema.dropTable('one_time_tokens').execute()
  await db.schema.dropTable('email_verifications').execute()
}
