// Timestamps are stored as epoch milliseconds and shown as ISO 8601 UTC strings.

const DAY_MS = 86_400_000
const MAX_DATE_MS = 8.64e15
/** `YYYY-MM-DDT` of recent days, by day number; cleared when full. */
const dayPrefixes = new Map<number, string>()
const DAY_PREFIXES_LIMIT = 1024

const twoDigits = (n: number): string => (n < 10 ? `0${n}` : `${n}`)

/**
 * `new Date(ms).toISOString()`, about 8x faster: V8 formats every date from
 * scratch (about 1.3 us here; a page of 20 tasks shows 40 dates). The date part
 * comes from `toISOString` itself, once a day; the time of day is arithmetic
 * (UTC days are all 86,400,000 ms long in JavaScript). test/time.test.ts checks
 * it against `toISOString` over the whole range of Date.
 */
export function toIso(ms: number): string {
  // Fractions, NaN and values outside Date's range: exactly as Date does (or throws).
  if (!Number.isInteger(ms) || Math.abs(ms) > MAX_DATE_MS) return new Date(ms).toISOString()
  const day = Math.floor(ms / DAY_MS)
  let prefix = dayPrefixes.get(day)
  if (prefix === undefined) {
    const iso = new Date(day * DAY_MS).toISOString()
    prefix = iso.slice(0, iso.indexOf('T') + 1)
    if (dayPrefixes.size >= DAY_PREFIXES_LIMIT) dayPrefixes.clear()
    dayPrefixes.set(day, prefix)
  }
  let rest = ms - day * DAY_MS
  const hours = Math.floor(rest / 3_600_000)
  rest -= hours * 3_600_000
  const minutes = Math.floor(rest / 60_000)
  rest -= minutes * 60_000
  const seconds = Math.floor(rest / 1000)
  const millis = rest - seconds * 1000
  const milliDigits = millis < 10 ? `00${millis}` : millis < 100 ? `0${millis}` : `${millis}`
  return `${prefix}${twoDigits(hours)}:${twoDigits(minutes)}:${twoDigits(seconds)}.${milliDigits}Z`
}

export const toIsoOrNull = (ms: number | null): string | null => (ms === null ? null : toIso(ms))
