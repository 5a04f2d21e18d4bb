// dist/latchkey.cjs (scripts/build.ts), the command `npm start` runs and the
// package's bin: it runs the server's bundle, dist/app.cjs, with the V8 code
// cache that the build wrote after a warm-up start of that bundle
// (dist/app.cjs.cache). With it, V8 skips compiling what start-up runs, most of
// a cold start. This module uses the cache only for the very bundle it was made
// from (the bundle's SHA-256 heads the file); V8 uses it only on the same node
// version with the same V8 flags (those of `npm start`) and otherwise compiles
// as usual. With LATCHKEY_WRITE_CODE_CACHE=1 (the build's warm-up run), it
// writes that cache as the process exits.
import { createHash } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import Module, { createRequire } from 'node:module'
import path from 'node:path'
import { constants, Script } from 'node:vm'

const file = path.join(__dirname, 'app.cjs')
const cacheFile = `${file}.cache`
const bytes = readFileSync(file)
const digest = createHash('sha256').update(bytes).digest()

function readCache(): Buffer | undefined {
  try {
    const cache = readFileSync(cacheFile)
    return cache.subarray(0, digest.length).equals(digest) ? cache.subarray(digest.length) : undefined
  } catch {
    return undefined
  }
}

const script = new Script(
  `(function (exports, require, module, __filename, __dirname) {${bytes.toString('latin1').replace(/^#!.*/, '')}\n})`,
  {
    filename: file,
    cachedData: process.env.LATCHKEY_WRITE_CODE_CACHE === '1' ? undefined : readCache(),
    // Dynamic import() in the bundle works as in any CommonJS module.
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  },
)

if (process.env.LATCHKEY_WRITE_CODE_CACHE === '1') {
  process.once('exit', () => {
    const temporary = `${cacheFile}.${process.pid}.tmp`
    writeFileSync(temporary, Buffer.concat([digest, script.createCachedData()]))
    renameSync(temporary, cacheFile)
  })
}

const bundle = new Module(file)
bundle.filename = file
;(script.runInThisContext() as (...args: unknown[]) => void).call(
  bundle.exports,
  bundle.exports,
  createRequire(file),
  bundle,
  file,
  __dirname,
)
