// The background sender: claims due jobs from the queue, has each written (the
// `write` callback, which makes its token), sends it and removes it. No request
// waits for it: a request queues a job and wakes the sender. A failed attempt is
// retried with exponential backoff (with jitter, so many instances do not retry
// in step), a permanent SMTP refusal (5xx) or the last attempt gives the job up;
// each failure is logged with its error code and counted in `stats()`, never
// with the address, link or body.

import type { Kysely } from 'kysely'
import type { Clock } from '../clock.js'
import type { Database } from '../db/database.js'
import {
  claimDueMails,
  completeMail,
  countMailQueue,
  giveUpMail,
  type MailJob,
  pruneFailedMails,
  type QueueCounts,
  retryMail,
} from './queue.js'
import { domainOf, type MailLogger, type MailMessage, type MailTransport } from './transport.js'

export interface MailSenderOptions {
  db: Kysely<Database>
  clock: Clock
  transport: MailTransport
  log: MailLogger
  /** Writes the mail of a job; null when there is nothing to send any more (no such account, a stale request). */
  write: (job: MailJob, at: number) => Promise<MailMessage | null>
  /** Housekeeping run at most once an hour (expired tokens, old given-up jobs); errors are logged. */
  maintain?: (at: number) => Promise<void>
}

export interface MailStats extends QueueCounts {
  transport: 'smtp' | 'outbox'
  /** Since this process started. */
  sent: number
  failedAttempts: number
  givenUp: number
  lastFailure: { at: string; error: string } | null
}

export interface MailSender {
  /** Sending in the background: now, on every poll, and when woken. */
  start(): void
  /** Background sending ends; waits for the pass under way (cutting a slow SMTP connection after a grace time). */
  stop(): Promise<void>
  /** A job was queued: send soon, without waiting for the next poll. */
  wake(): void
  /** One pass now, after any pass under way, started or stopped: every due job is tried once. */
  flush(): Promise<void>
  stats(): Promise<MailStats>
}

/** How often the queue is polled for retries and for jobs other instances queued. */
const POLL_INTERVAL_MS = 5_000
/** Jobs claimed, and sent in parallel, at a time. */
const BATCH_SIZE = 5
/** How long a claim hides a job from other senders: longer than any send (SMTP timeouts are 20 s each). */
const LEASE_MS = 5 * 60_000
const FIRST_RETRY_MS = 30_000
const LONGEST_RETRY_MS = 60 * 60_000
/** About three hours of retries in all. */
export const MAX_ATTEMPTS = 10
const MAINTENANCE_INTERVAL_MS = 60 * 60_000
/** Given-up jobs are kept this long for the operator to see. */
const KEEP_FAILED_MS = 7 * 24 * 60 * 60_000
/** How long stop() lets a send finish before cutting its connection. */
const STOP_GRACE_MS = 3_000

/** Delay before attempt `attempts + 1`: 30 s, 1 min, 2 min, ... up to an hour, each +-10%. */
export function retryDelay(attempts: number): number {
  const base = Math.min(FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1), LONGEST_RETRY_MS)
  return Math.round(base * (0.9 + Math.random() * 0.2))
}

/** An error's code, never its message (an SMTP reply may quote the address). */
function errorCodeOf(error: unknown): { code: string; permanent: boolean } {
  const { code, responseCode } = error as { code?: unknown; responseCode?: unknown }
  const name = typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'ERROR'
  const response = typeof responseCode === 'number' ? responseCode : undefined
  return {
    code: response === undefined ? name : `${name} ${response}`,
    permanent: response !== undefined && response >= 500 && response < 600,
  }
}

export function createMailSender(options: MailSenderOptions): MailSender {
  const { db, clock, transport, log } = options
  let timer: NodeJS.Timeout | undefined
  /** Sending in the background. */
  let background = false
  /** stop() is cutting the pass under way short. */
  let halting = false
  let running: Promise<void> | undefined
  let again = false
  let lastMaintenance = 0
  const counters = { sent: 0, failedAttempts: 0, givenUp: 0 }
  let lastFailure: MailStats['lastFailure'] = null

  async function deliver(job: MailJob): Promise<void> {
    const about = { mailId: job.id, purpose: job.purpose, recipientDomain: domainOf(job.recipient) }
    try {
      const message = await options.write(job, clock.now())
      if (message) await transport.send(message)
      await completeMail(db, job)
      if (message) counters.sent++
    } catch (error) {
      const { code, permanent } = errorCodeOf(error)
      counters.failedAttempts++
      const at = clock.now()
      lastFailure = { at: new Date(at).toISOString(), error: code }
      try {
        if (permanent || job.attempts >= MAX_ATTEMPTS) {
          counters.givenUp++
          await giveUpMail(db, job, at, code)
          log.error({ ...about, attempts: job.attempts, error: code }, 'mail given up')
        } else {
          const delay = retryDelay(job.attempts)
          await retryMail(db, job, at + delay, code)
          log.warn(
            { ...about, attempts: job.attempts, error: code, retryInSeconds: Math.round(delay / 1000) },
            'mail not sent; will retry',
          )
        }
      } catch (recordError) {
        // The claim's lease runs out and the job comes back by itself.
        log.error({ ...about, error: errorCodeOf(recordError).code }, 'mail failure could not be recorded')
      }
    }
  }

  async function maintain(at: number): Promise<void> {
    if (at - lastMaintenance < MAINTENANCE_INTERVAL_MS) return
    lastMaintenance = at
    try {
      while ((await pruneFailedMails(db, at - KEEP_FAILED_MS, 500)) > 0 && !halting) {}
      await options.maintain?.(at)
    } catch (error) {
      log.error({ error: errorCodeOf(error).code }, 'mail queue housekeeping failed')
    }
  }

  async function pass(): Promise<void> {
    do {
      again = false
      for (;;) {
        if (halting) return
        const jobs = await claimDueMails(db, clock.now(), BATCH_SIZE, LEASE_MS)
        if (jobs.length === 0) break
        await Promise.all(jobs.map(deliver))
      }
      await maintain(clock.now())
    } while (again && !halting)
  }

  function run(): Promise<void> {
    if (running) {
      again = true
      return running
    }
    running = pass()
      .catch((error) => {
        // The database did not answer: the next poll tries again.
        log.warn({ error: errorCodeOf(error).code }, 'mail queue could not be read')
      })
      .finally(() => {
        running = undefined
      })
    return running
  }

  function schedule(): void {
    if (!background) return
    timer = setTimeout(() => {
      void run().finally(schedule)
    }, POLL_INTERVAL_MS)
    timer.unref()
  }

  return {
    start() {
      if (background) return
      background = true
      // Jobs left by an earlier run (or another instance) go out now.
      void run()
      schedule()
    },
    async stop() {
      background = false
      halting = true
      if (timer) clearTimeout(timer)
      const current = running
      if (current) {
        let grace: NodeJS.Timeout | undefined
        const cut = new Promise<void>((resolve) => {
          grace = setTimeout(resolve, STOP_GRACE_MS)
        })
        await Promise.race([current, cut])
        clearTimeout(grace)
        // Still sending: cut the connection; the attempt fails and is retried by whoever runs next.
        transport.close()
        await current
      }
      transport.close()
      halting = false
    },
    wake() {
      if (!background) return
      setImmediate(() => void run())
    },
    async flush() {
      if (running) await running
      await run()
    },
    async stats() {
      return { ...(await countMailQueue(db)), transport: transport.kind, ...counters, lastFailure }
    },
  }
}
