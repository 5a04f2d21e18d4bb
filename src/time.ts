// Timestamps are stored as epoch milliseconds and shown as ISO 8601 UTC strings.
export const now = (): number => Date.now()
export const toIso = (ms: number): string => new Date(ms).toISOString()
export const toIsoOrNull = (ms: number | null): string | null => (ms === null ? null : toIso(ms))
