// The ordered list of migrations. Each file is named by its timestamp and never
// edited once released; add a new file and a line here. A static list (rather
// than reading the folder) lets the single binary carry the migrations inside it.
import type { Migration } from 'kysely'
import * as initial from './2026-11-22T1700-initial.js'
import * as rateLimits from './2026-11-29T1200-rate-limits.js'
import * as deviceTokens from './2026-11-29T1300-device-tokens.js'
import * as signingKeys from './2026-11-29T1400-signing-keys.js'
import * as email from './2026-11-29T1500-email.js'
import * as securityEvents from './2026-11-29T1600-security-events.js'
import * as secondFactors from './2026-11-29T1700-second-factors.js'

export const migrations: Record<string, Migration> = {
  '2026-11-22T1700-initial': initial,
  '2026-11-29T1200-rate-limits': rateLimits,
  '2026-11-29T1300-device-tokens': deviceTokens,
  '2026-11-29T1400-signing-keys': signingKeys,
  '2026-11-29T1500-email': email,
  '2026-11-29T1600-security-events': securityEvents,
  '2026-11-29T1700-second-factors': secondFactors,
}
