// Login attempts counted per account email, across all client IPs. An attempt
// takes a point before the password is checked (so parallel guesses cannot slip
// past the limit) and a success gives them all back: after `max` failures in the
// window, every attempt, even with the right password, waits the window out.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'

export interface LoginThrottle {
  /** Takes one attempt; returns 0 if allowed, else the seconds to wait. */
  attempt(email: string): Promise<number>
  /** Forgets the failures of an email after a successful login. */
  succeeded(email: string): Promise<void>
}

export function createLoginThrottle(max: number, windowSeconds: number): LoginThrottle {
  const limiter = new RateLimiterMemory({ keyPrefix: 'login', points: max, duration: windowSeconds })
  return {
    async attempt(email) {
      try {
        await limiter.consume(email, 1)
        return 0
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000))
        throw rejection
      }
    },
    async succeeded(email) {
      await limiter.delete(email)
    },
  }
}
