// Password hashing (argon2id), the sign-up password policy, and verification
// that takes the same time whether or not the account exists.
import argon2 from 'argon2'
import pLimit from 'p-limit'
import { AppError } from '../errors.js'

export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 256
let commonPasswords: Promise<Set<string>> | undefined

/**
 * The 10,000 most common passwords, ranked by frequency (the top of
 * @zxcvbn-ts/language-common's list, shipped as one file: the package
 * decompressed all its word lists as it loaded). Loaded on first use, so a
 * cold start does not pay for it.
 */
function commonPasswordSet(): Promise<Set<string>> {
  commonPasswords ??= import('./common-passwords.json', { with: { type: 'json' } }).then(
    ({ default: list }) => new Set(list as string[]),
  )
  return commonPasswords
}

/** Returns why a password is refused, or `null` if it is acceptable. */
export async function passwordWeakness(password: string): Promise<string | null> {
  const length = [...password].length
  if (length < PASSWORD_MIN_LENGTH) return `must be at least ${PASSWORD_MIN_LENGTH} characters long`
  if (length > PASSWORD_MAX_LENGTH) return `must be at most ${PASSWORD_MAX_LENGTH} characters long`
  const common = await commonPasswordSet()
  if (common.has(password) || common.has(password.toLowerCase())) return 'is one of the most common passwords'
  return null
}

export interface PasswordHasherOptions {
  memoryKib: number
  timeCost: number
  parallelism: number
  /** Hashes computed at once; more wait in line rather than crowd the thread pool. */
  concurrency: number
  /** Hashes that may wait in line; beyond it a request is refused at once (503 SERVER_BUSY). */
  queueMax: number
  /** Called as each hash starts, with the seconds it waited for a slot (for the metrics). */
  onWait?: ((seconds: number) => void) | undefined
}

/** Seconds a refused client is asked to wait: about the time the line takes to drain. */
const BUSY_RETRY_AFTER_SECONDS = 1

export interface PasswordHasher {
  hash(password: string): Promise<string>
  /**
   * Verifies `password` against `hash`. With `hash` null (no such account) it
   * verifies against a dummy hash and returns false, so both cost the same.
   */
  verify(hash: string | null, password: string): Promise<boolean>
  /** Whether a stored hash was made with other parameters than today's. */
  needsRehash(hash: string): boolean
  /** Makes the dummy hash now, in the background, if not yet made (called once the server listens). */
  prepare(): void
  /** Hashes waiting for a slot, and hashes being computed, now. */
  queue(): { waiting: number; active: number }
}

export function createPasswordHasher(options: PasswordHasherOptions): PasswordHasher {
  const params = {
    type: argon2.argon2id as typeof argon2.argon2id,
    memoryCost: options.memoryKib,
    timeCost: options.timeCost,
    parallelism: options.parallelism,
  }
  const limit = pLimit(options.concurrency)
  // A bounded line: one address sending long passwords cannot make every login wait without end.
  const queued = <T>(work: () => Promise<T>): Promise<T> => {
    if (limit.pendingCount >= options.queueMax) {
      return Promise.reject(
        new AppError(503, 'SERVER_BUSY', 'Too many password checks are waiting; retry shortly', undefined, {
          'Retry-After': String(BUSY_RETRY_AFTER_SECONDS),
        }),
      )
    }
    const { onWait } = options
    if (!onWait) return limit(work)
    const queuedAt = performance.now()
    return limit(() => {
      onWait((performance.now() - queuedAt) / 1000)
      return work()
    })
  }
  const hash = (password: string) => queued(() => argon2.hash(password, params))
  // Made in the background as soon as the server listens (prepare), so that the
  // first unknown-email login is no slower than a wrong password, which would be
  // a timing tell; not earlier, where it would compete with start-up for a core.
  let dummy: Promise<string> | undefined
  const dummyHash = () => {
    dummy ??= limit(() => argon2.hash('latchkey dummy password for unknown accounts', params))
    return dummy
  }
  const verifyWith = (stored: string, password: string) =>
    queued(async () => {
      try {
        return await argon2.verify(stored, password)
      } catch {
        return false
      }
    })

  return {
    hash,
    async verify(stored, password) {
      if (stored !== null) return verifyWith(stored, password)
      await verifyWith(await dummyHash(), password)
      return false
    },
    needsRehash: (stored) => argon2.needsRehash(stored, params),
    prepare: () => {
      dummyHash()
    },
    queue: () => ({ waiting: limit.pendingCount, active: limit.activeCount }),
  }
}
