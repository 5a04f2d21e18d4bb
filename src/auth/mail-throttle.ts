// Limits on asking for mails (password reset, sign-in link, verification,
// email change): per recipient address, so nobody can flood a mailbox, and per
// client IP, so nobody can turn the server into a mail cannon. The address is
// counted whether or not it has an account, so a 429 says nothing about which
// addresses exist.
import { RateLimiterRes } from 'rate-limiter-flexible'
import type { CounterFactory } from '../limits/counters.js'

export interface MailThrottle {
  /** Takes one request for a mail to `email` from `ip`; 0 if allowed, else the seconds to wait. */
  take(email: string, ip: string): Promise<number>
}

const HOUR_SECONDS = 60 * 60
const FIFTEEN_MINUTES_SECONDS = 15 * 60

async function wait(consume: () => Promise<unknown>): Promise<number> {
  try {
    await consume()
    return 0
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000))
    throw rejection
  }
}

export function createMailThrottle(
  counters: CounterFactory,
  limits: { perAddressPerHour: number; perIpPer15Minutes: number },
): MailThrottle {
  const perAddress = counters({ name: 'mail:address', points: limits.perAddressPerHour, durationSeconds: HOUR_SECONDS })
  const perIp = counters({
    name: 'mail:ip',
    points: limits.perIpPer15Minutes,
    durationSeconds: FIFTEEN_MINUTES_SECONDS,
  })
  return {
    async take(email, ip) {
      const waits = await Promise.all([wait(() => perAddress.consume(email)), wait(() => perIp.consume(ip))])
      return Math.max(...waits)
    },
  }
}
