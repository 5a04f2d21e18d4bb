// One injectable "now" (epoch milliseconds) for every rule that reads the time:
// tests move time forward instead of sleeping.
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }
