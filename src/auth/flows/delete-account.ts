// Account deletion, by its owner (DELETE /users/me) or an operator (`latchkey
// users delete`). The user row goes, and with it (foreign-key cascades) its
// sessions, tokens, lists, tasks and secrets; its security events hold IPs and
// user agents, so they go too. What stays is one `account_deleted` event that
// holds the user id alone (no IP, user agent, session or email): a random id
// that names no one once the account is gone, and what the log lines and the
// operator's records already call the account. It ends with the retention like
// any event.

import { eraseSecurityEvents } from '../security-events.js'
import { deleteUser } from '../users.js'
import type { FlowContext } from './context.js'

/** Deletes the account; false if there was none with that id. */
export async function deleteAccount(context: Pick<FlowContext, 'db' | 'events'>, userId: string): Promise<boolean> {
  return context.db.transaction().execute(async (trx) => {
    if (!(await deleteUser(trx, userId))) return false
    await eraseSecurityEvents(trx, userId)
    await context.events.record(trx, { type: 'account_deleted', userId })
    return true
  })
}
