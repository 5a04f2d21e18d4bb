import t from 'tap'
import { toIso } from '../src/time.js'

const native = (ms: number) => new Date(ms).toISOString()

t.test('toIso formats exactly as Date#toISOString', async (t) => {
  const units = [0, -1, 1, 999, 1000, 59_999, 3_599_999, 86_399_999, 86_400_000, -86_400_000, -86_400_001]
  const edges = [
    ...units,
    951_782_400_000, // 2000-02-29
    4_107_542_399_999, // 2100-02-28T23:59:59.999
    253_402_300_799_999, // 9999-12-31T23:59:59.999
    253_402_300_800_000, // +010000-01-01
    -62_167_219_200_000, // 0000-01-01
    -62_167_219_200_001, // -000001-12-31
    8.64e15,
    -8.64e15,
    Date.now(),
  ]
  for (const ms of edges) t.equal(toIso(ms), native(ms), String(ms))

  let mismatches = 0
  for (let i = 0; i < 200_000; i++) {
    // Half across the whole range of Date, half across this century (where the data is).
    const ms =
      i % 2 === 0
        ? Math.floor((Math.random() * 2 - 1) * 8.64e15)
        : Math.floor(946_684_800_000 + Math.random() * 3_155_760_000_000)
    if (toIso(ms) !== native(ms)) mismatches++
  }
  t.equal(mismatches, 0, 'no mismatch over 200,000 random instants')
})

t.test('toIso treats what is not a whole in-range millisecond as Date does', async (t) => {
  t.equal(toIso(1.7), native(1.7), 'fractions are truncated')
  t.equal(toIso(-1.7), native(-1.7))
  t.throws(() => toIso(Number.NaN), RangeError)
  t.throws(() => toIso(8.64e15 + 1), RangeError)
  t.throws(() => toIso(Number.POSITIVE_INFINITY), RangeError)
})
