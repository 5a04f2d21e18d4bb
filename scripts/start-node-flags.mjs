// The node flags of `npm start` (package.json's start script), which the build's
// warm-up run (scripts/build.ts) and the benchmark (bench/run.mjs) use too.
import { readFileSync } from 'node:fs'
import path from 'node:path'

export function startNodeFlags() {
  const packageFile = path.join(import.meta.dirname, '..', 'package.json')
  const start = JSON.parse(readFileSync(packageFile, 'utf8')).scripts.start
  const match = /\bnode((?: --\S+)*) dist\/latchkey\.cjs serve\b/.exec(start)
  if (!match) throw new Error(`cannot find "node [flags] dist/latchkey.cjs serve" in the start script: ${start}`)
  return match[1].split(/\s+/).filter(Boolean)
}
