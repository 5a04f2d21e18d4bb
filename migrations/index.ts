// The ordered list of migrations. Each file is named by its timestamp and never
// edited once released; add a new file and a line here. A static list (rather
// than reading the folder) lets the single binary carry the migrations inside it.
import type { Migration } from 'kysely'
import * as initial from './2026-11-22T1700-initial.js'
import * as rateLimits from './2026-11-29T1200-rate-limits.js'

export const migrations: Record<string, Migration> = {
  '2026-11-22T1700-initial': initial,
  '2026-11-29T1200-rate-limits': rateLimits,
}
