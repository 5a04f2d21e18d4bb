// Login by email and password; the account's hash is upgraded when today's
// argon2 parameters differ from the ones it was made with.
import { findUserByEmail, normalizeEmail, setPasswordHash, type UserRecord } from '../users.js'
import { type Client, checkPassword } from './check-password.js'
import type { FlowContext } from './context.js'

export async function logIn(
  context: FlowContext,
  client: Client,
  input: { email: string; password: string },
): Promise<UserRecord> {
  const email = normalizeEmail(input.email)
  const user = await checkPassword(context, client, email, await findUserByEmail(context.db, email), input.password)
  if (context.passwords.needsRehash(user.password_hash)) {
    // updated_at stays: the account did not change in any way its owner would see.
    await setPasswordHash(context.db, user.id, await context.passwords.hash(input.password), user.updated_at)
  }
  const { password_hash: _, ...record } = user
  return record
}
