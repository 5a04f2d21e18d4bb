// The ceiling of login throughput: bare argon2.hash calls with the server's
// parameters and concurrency, in a process of their own, for a fixed time.
// Prints { hashes, seconds, rate } as JSON.
import argon2 from 'argon2'

const memoryCost = Number(process.env.ARGON2_MEMORY_KIB ?? 19456)
const timeCost = Number(process.env.ARGON2_TIME_COST ?? 2)
const parallelism = Number(process.env.ARGON2_PARALLELISM ?? 1)
const concurrency = Number(process.env.HASH_CONCURRENCY)
const durationMs = Number(process.env.DURATION_MS ?? 5000)
const MAX_HASHES = 100_000

const params = { type: argon2.argon2id, memoryCost, timeCost, parallelism }
await argon2.hash('warm up', params)

let hashes = 0
const start = performance.now()
const deadline = start + durationMs
async function worker() {
  while (performance.now() < deadline && hashes < MAX_HASHES) {
    await argon2.hash('correct horse battery staple', params)
    hashes++
  }
}
await Promise.all(Array.from({ length: concurrency }, worker))
const seconds = (performance.now() - start) / 1000
process.stdout.write(`${JSON.stringify({ hashes, seconds, rate: hashes / seconds, concurrency })}\n`)
