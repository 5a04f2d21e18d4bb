// What every flow works with: the database, the clock, the password hasher, the
// failed-login throttle and the security event log. Built once by the auth
// plugin; flows never see Fastify.
import type { Kysely } from 'kysely'
import type { Clock } from '../../clock.js'
import type { Database } from '../../db/database.js'
import type { LoginThrottle } from '../login-throttle.js'
import type { PasswordHasher } from '../passwords.js'
import type { SecurityEvents } from '../security-events.js'

export interface FlowContext {
  db: Kysely<Database>
  clock: Clock
  passwords: PasswordHasher
  loginThrottle: LoginThrottle
  events: SecurityEvents
}
