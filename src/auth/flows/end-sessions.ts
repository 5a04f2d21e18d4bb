// Ending sessions at the user's request: logout (this session, the others, or
// all) and revoking one session from the list. Each ended session is a security
// event: `logout` for the caller's own, `session_revoked` for any other, with the
// client that ended it.

import type { EventClient, SecurityEventInput } from '../security-events.js'
import { endSessions, revokeSession } from '../sessions.js'
import type { FlowContext } from './context.js'

interface Caller extends EventClient {
  userId: string
  sessionId: string
}

export async function logOut(context: FlowContext, caller: Caller, scope: 'current' | 'others' | 'all'): Promise<void> {
  const ended = await endSessions(context.db, caller, scope, context.clock.now())
  context.events.metrics.sessionsRevoked('logout', ended.length)
  const { userId, ip, userAgent } = caller
  await context.events.record(
    context.db,
    ...ended.map(
      (sessionId): SecurityEventInput => ({
        type: sessionId === caller.sessionId ? 'logout' : 'session_revoked',
        userId,
        sessionId,
        ip,
        userAgent,
      }),
    ),
  )
}

/** Revokes one active session of the caller's; false if there is none with that id. */
export async function revokeOwnSession(context: FlowContext, caller: Caller, sessionId: string): Promise<boolean> {
  if (!(await revokeSession(context.db, caller.userId, sessionId, context.clock.now()))) return false
  context.events.metrics.sessionsRevoked('revoked', 1)
  const { userId, ip, userAgent } = caller
  await context.events.record(context.db, { type: 'session_revoked', userId, sessionId, ip, userAgent })
  return true
}
