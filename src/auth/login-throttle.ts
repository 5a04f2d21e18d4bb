// Failed-login limits (API.md section 4): guessing is slow, but nobody else can
// lock the owner out of their own account.
// - per email and client IP: `max` failures in the window, then that IP waits,
//   even with the right password;
// - per client IP across all emails: 5 x `max` (credential stuffing, hash flooding);
// - per email across all IPs: 10 x `max`; beyond it only a client that presents
//   a valid device cookie of the account (`trustedDevice`) may still try.
// An attempt takes a point from each counter before the password is checked (so
// parallel guesses cannot slip past a limit); a success gives back the IP's
// point and forgets the email's counters.
import { RateLimiterRes } from 'rate-limiter-flexible'
import type { CounterFactory } from '../limits/counters.js'

export interface LoginAttempt {
  email: string
  ip: string
  /** The client presented a valid device cookie bound to this account. */
  trustedDevice: boolean
}

export interface LoginThrottle {
  /** Takes one attempt; returns 0 if allowed, else the seconds to wait. */
  attempt(attempt: LoginAttempt): Promise<number>
  /** Forgets the email's failures after a successful login. */
  succeeded(attempt: LoginAttempt): Promise<void>
}

const WINDOW_SECONDS = 15 * 60

/** Seconds until a rejected counter frees a point; 0 if it allowed the attempt. */
async function take(consume: () => Promise<unknown>): Promise<number> {
  try {
    await consume()
    return 0
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000))
    throw rejection
  }
}

export function createLoginThrottle(counters: CounterFactory, max: number): LoginThrottle {
  const perEmailAndIp = counters({ name: 'login:email-ip', points: max, durationSeconds: WINDOW_SECONDS })
  const perIp = counters({ name: 'login:ip', points: 5 * max, durationSeconds: WINDOW_SECONDS })
  const perEmail = counters({ name: 'login:email', points: 10 * max, durationSeconds: WINDOW_SECONDS })
  const emailAndIp = ({ email, ip }: LoginAttempt) => JSON.stringify([email, ip])

  return {
    async attempt(attempt) {
      const waits = await Promise.all([
        take(() => perEmailAndIp.consume(emailAndIp(attempt))),
        take(() => perIp.consume(attempt.ip)),
        // A device that signed in to this account before is past the account-wide ceiling.
        attempt.trustedDevice ? 0 : take(() => perEmail.consume(attempt.email)),
      ])
      return Math.max(...waits)
    },
    async succeeded(attempt) {
      await Promise.all([
        perEmailAndIp.delete(emailAndIp(attempt)),
        perEmail.delete(attempt.email),
        perIp.reward(attempt.ip, 1),
      ])
    },
  }
}
