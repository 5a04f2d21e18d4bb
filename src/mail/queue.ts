// The durable mail queue: a table of jobs, so a mail asked for survives a crash
// or a restart, and each goes out once however many instances send. A job holds
// what the mail is about (purpose, recipient, user, a small payload), never a
// token: the sender writes the mail, and makes its token, when it sends it.
//
// A sender claims due jobs in one transaction: on PostgreSQL the rows are
// locked `FOR UPDATE SKIP LOCKED`, so two instances claim different rows
// without waiting on each other; on SQLite the transaction is IMMEDIATE and
// holds the one write lock. Claiming moves `next_attempt_at` a lease ahead and
// stamps a claim id: the job is invisible to other senders while it is sent,
// comes back if its sender dies, and only the claim's holder may finish it.
import { randomUUID } from 'node:crypto'
import { type Kysely, PostgresAdapter, sql, type Transaction } from 'kysely'
import type { Database, MailQueueRow } from '../db/database.js'

type Db = Kysely<Database> | Transaction<Database>

export interface NewMailJob {
  purpose: string
  recipient: string
  userId?: string | null
  payload?: Record<string, string | boolean | number>
}

export interface MailJob {
  id: string
  purpose: string
  recipient: string
  userId: string | null
  payload: Record<string, unknown>
  createdAt: number
  /** Including the attempt now under way. */
  attempts: number
  claimId: string
}

/** Queues a mail; run it in the transaction of the change it reports, so both happen or neither. */
export async function enqueueMail(db: Db, job: NewMailJob, at: number): Promise<string> {
  const id = randomUUID()
  await db
    .insertInto('mail_queue')
    .values({
      id,
      purpose: job.purpose,
      recipient: job.recipient,
      user_id: job.userId ?? null,
      payload: JSON.stringify(job.payload ?? {}),
      created_at: at,
      next_attempt_at: at,
    })
    .execute()
  return id
}

const isPostgres = (db: Db): boolean => db.getExecutor().adapter instanceof PostgresAdapter

function toJob(row: MailQueueRow, claimId: string): MailJob {
  let payload: Record<string, unknown> = {}
  try {
    const parsed: unknown = JSON.parse(row.payload)
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) payload = parsed as Record<string, unknown>
  } catch {
    // A payload that does not parse is an empty one; the writer refuses what it lacks.
  }
  return {
    id: row.id,
    purpose: row.purpose,
    recipient: row.recipient,
    userId: row.user_id,
    payload,
    createdAt: row.created_at,
    attempts: row.attempts,
    claimId,
  }
}

/** Claims up to `limit` due jobs for `leaseMs`; an empty array when none is due. */
export async function claimDueMails(
  db: Kysely<Database>,
  at: number,
  limit: number,
  leaseMs: number,
): Promise<MailJob[]> {
  // A read first: most polls find nothing, and then take no write lock at all.
  const due = await db.selectFrom('mail_queue').select('id').where('next_attempt_at', '<=', at).limit(1).execute()
  if (due.length === 0) return []
  const claimId = randomUUID()
  const rows = await db.transaction().execute(async (trx) => {
    const picked = await trx
      .selectFrom('mail_queue')
      .select('id')
      .where('next_attempt_at', '<=', at)
      .orderBy('next_attempt_at')
      .limit(limit)
      .$if(isPostgres(trx), (query) => query.forUpdate().skipLocked())
      .execute()
    if (picked.length === 0) return []
    return trx
      .updateTable('mail_queue')
      .set({ next_attempt_at: at + leaseMs, claim_id: claimId, attempts: sql`attempts + 1` })
      .where(
        'id',
        'in',
        picked.map((row) => row.id),
      )
      .returningAll()
      .execute()
  })
  return rows.map((row) => toJob(row, claimId))
}

/** The job is done (sent, or nothing was left to send): it leaves the queue. False if its claim was lost. */
export async function completeMail(db: Db, job: MailJob): Promise<boolean> {
  const result = await db
    .deleteFrom('mail_queue')
    .where('id', '=', job.id)
    .where('claim_id', '=', job.claimId)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** The attempt failed: the job is due again at `nextAttemptAt`. */
export async function retryMail(db: Db, job: MailJob, nextAttemptAt: number, error: string): Promise<void> {
  await db
    .updateTable('mail_queue')
    .set({ next_attempt_at: nextAttemptAt, claim_id: null, last_error: error })
    .where('id', '=', job.id)
    .where('claim_id', '=', job.claimId)
    .execute()
}

/** The job failed for good: it stays, not due, for the operator to see (until pruned). */
export async function giveUpMail(db: Db, job: MailJob, at: number, error: string): Promise<void> {
  await db
    .updateTable('mail_queue')
    .set({ next_attempt_at: null, claim_id: null, last_error: error, failed_at: at })
    .where('id', '=', job.id)
    .where('claim_id', '=', job.claimId)
    .execute()
}

export interface QueueCounts {
  /** Jobs waiting to be sent, or being sent. */
  queued: number
  /** Jobs that were given up. */
  failed: number
}

export async function countMailQueue(db: Db): Promise<QueueCounts> {
  const row = await db
    .selectFrom('mail_queue')
    .select((eb) => [
      eb.fn.count<number | string>('next_attempt_at').as('queued'),
      eb.fn.count<number | string>('failed_at').as('failed'),
    ])
    .executeTakeFirst()
  return { queued: Number(row?.queued ?? 0), failed: Number(row?.failed ?? 0) }
}

/** Deletes given-up jobs older than `before`, a batch at a time; returns how many went. */
export async function pruneFailedMails(db: Db, before: number, batchSize: number): Promise<number> {
  const batch = db.selectFrom('mail_queue').select('id').where('failed_at', '<=', before).limit(batchSize)
  const result = await db.deleteFrom('mail_queue').where('id', 'in', batch).executeTakeFirst()
  return Number(result.numDeletedRows)
}
