// Mail: the transport (SMTP from SMTP_URL, else .eml files in <DATA_DIR>/outbox),
// the background sender of the durable queue, and the context of the email
// flows. Decorates `mail` (wake, flush, stats) and `emailFlows`. The sender
// starts once the app is ready and stops before the database closes; jobs
// queued meanwhile wait in the table for the next start (or another instance).
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { EmailFlowContext } from '../src/auth/flows/email-context.js'
import { writeMail } from '../src/auth/flows/email-mails.js'
import { createMailThrottle } from '../src/auth/mail-throttle.js'
import { deleteExpiredOneTimeTokens } from '../src/auth/one-time-tokens.js'
import { postgresPools } from '../src/db/dialect.js'
import { createCounterFactory } from '../src/limits/counters.js'
import { createMailSender, type MailSender } from '../src/mail/sender.js'
import { createMailTransport } from '../src/mail/transport.js'

declare module 'fastify' {
  interface FastifyInstance {
    mail: MailSender
    emailFlows: EmailFlowContext
  }
}

/** Expired one-time tokens deleted per statement by the sender's hourly housekeeping. */
const TOKEN_PRUNE_BATCH = 500

async function mail(fastify: FastifyInstance): Promise<void> {
  const { config, db, clock } = fastify
  const log = fastify.log.child({ module: 'mail' })
  const transport = createMailTransport({
    smtpUrl: config.smtpUrl,
    from: config.mailFrom,
    outboxDir: path.join(config.dataDir, 'outbox'),
    log,
  })
  const pool = postgresPools.get(fastify.database)
  const counters = createCounterFactory(
    fastify.redis ? { kind: 'redis', client: fastify.redis } : pool ? { kind: 'postgres', pool } : { kind: 'memory' },
    (message) => log.warn(message),
  )
  let sender: MailSender | undefined
  const emailFlows: EmailFlowContext = {
    ...fastify.flows,
    keys: fastify.keys,
    settings: config,
    mailThrottle: createMailThrottle(counters, {
      perAddressPerHour: config.mailRateLimitMax,
      perIpPer15Minutes: config.authRateLimitMax,
    }),
    mailQueued: () => sender?.wake(),
  }
  sender = createMailSender({
    db,
    clock,
    transport,
    log,
    write: (job, at) => writeMail(emailFlows, job, at),
    maintain: async (at) => {
      while ((await deleteExpiredOneTimeTokens(db, at, TOKEN_PRUNE_BATCH)) > 0) {}
    },
  })
  fastify.decorate('mail', sender)
  fastify.decorate('emailFlows', emailFlows)
  if (!config.smtpUrl) {
    log.info({ outbox: path.join(config.dataDir, 'outbox') }, 'no SMTP_URL: mails are written to the outbox')
  }
  fastify.addHook('onReady', async () => sender.start())
  // preClose runs before the database plugin's onClose.
  fastify.addHook('preClose', async () => sender.stop())
}

export default fp(mail, { name: 'mail', dependencies: ['db', 'redis', 'auth'] })
