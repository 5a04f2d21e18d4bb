// Signing keys of access tokens (src/auth/signing-keys.ts), shared by every
// instance. A key's state (next, current, retired) follows from its dates, so
// every instance reads the same state at the same moment without a job moving
// it. The private key is stored sealed (AES-256-GCM under a key derived from
// JWT_SECRET), never in clear, and is wiped once the key no longer signs.
import { type Kysely, PostgresAdapter } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and must not depend on today's table types
export async function up(db: Kysely<any>): Promise<void> {
  const binary = db.getExecutor().adapter instanceof PostgresAdapter ? 'bytea' : 'blob'
  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'text', (col) => col.primaryKey())
    .addColumn('algorithm', 'text', (col) => col.notNull())
    .addColumn('public_jwk', 'text', (col) => col.notNull())
    .addColumn('private_key', binary)
    .addColumn('encryption_key_id', 'text')
    .addColumn('created_at', 'bigint', (col) => col.notNull())
    .addColumn('activates_at', 'bigint', (col) => col.notNull())
    .addColumn('retires_at', 'bigint')
    .addColumn('expires_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signing_keys').execute()
}
