// Sign-up: the password policy, a taken email (409), argon2id, the new account.
import { AppError, weakPassword } from '../../errors.js'
import { passwordWeakness } from '../passwords.js'
import { createUser, findUserByEmail, normalizeEmail, type UserRecord } from '../users.js'
import type { FlowContext } from './context.js'

export async function signUp(
  context: FlowContext,
  input: { email: string; password: string; displayName?: string | undefined },
): Promise<UserRecord> {
  const email = normalizeEmail(input.email)
  const weakness = await passwordWeakness(input.password)
  if (weakness) throw weakPassword('password', weakness)
  // Checked before hashing, so a taken email costs no hash; the unique index still decides a race.
  if (await findUserByEmail(context.db, email))
    throw new AppError(409, 'EMAIL_TAKEN', 'That email is already registered')
  const passwordHash = await context.passwords.hash(input.password)
  return createUser(context.db, { email, displayName: input.displayName ?? null, passwordHash }, context.clock.now())
}
