// What dist/ was built from: a hash of every source the build reads, the
// lockfile and the node version (the code cache belongs to one node). `npm
// start` rebuilds only when it changed (scripts/build-if-stale.mjs).
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'

const ROOT = path.join(import.meta.dirname, '..')
const STAMP = path.join(ROOT, 'dist', 'build-stamp.json')
const INPUTS = ['src', 'plugins', 'routes', 'migrations', 'scripts', 'package.json', 'package-lock.json']
const OUTPUTS = ['latchkey.cjs', 'app.cjs', 'app.cjs.cache', 'cleanup-worker.cjs']

function files(entry) {
  const full = path.join(ROOT, entry)
  if (!existsSync(full)) return []
  if (!statSync(full).isDirectory()) return [entry]
  return readdirSync(full, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((child) => files(path.join(entry, child.name)))
}

export function sourceHash() {
  const hash = createHash('sha256').update(process.version)
  for (const file of INPUTS.flatMap(files))
    hash
      .update(file)
      .update('\0')
      .update(readFileSync(path.join(ROOT, file)))
  return hash.digest('hex')
}

export function writeStamp() {
  writeFileSync(STAMP, `${JSON.stringify({ sources: sourceHash() })}\n`)
}

/** Whether dist/ holds a complete build of the sources as they are now. */
export function isFresh() {
  if (!existsSync(STAMP) || OUTPUTS.some((name) => !existsSync(path.join(ROOT, 'dist', name)))) return false
  try {
    return JSON.parse(readFileSync(STAMP, 'utf8')).sources === sourceHash()
  } catch {
    return false
  }
}
