// Runs a CommonJS file the way Node's loader would (the same wrapper, `require`
// and `module`), but through vm.Script, which can take V8's code cache for it
// and make one. A cache file holds the SHA-256 of the file it was made from,
// then V8's data; it is used only for that very file, since V8 itself checks
// no more than the source's length.
import { createHash } from 'node:crypto'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import Module, { createRequire } from 'node:module'
import path from 'node:path'
import { constants, Script } from 'node:vm'

export interface CachedScript {
  /** Whether V8 compiled with the cache (false without a usable one). */
  readonly cacheUsed: boolean
  /** Runs the file as a CommonJS module; returns its `module.exports`. */
  run(): unknown
  /** Writes the code cache as it is now (more functions are compiled after running). */
  writeCache(): void
}

/** Loads `file` (ASCII, as esbuild writes it) with the code cache at `cacheFile`, if it is `file`'s. */
export function loadWithCodeCache(
  file: string,
  cacheFile: string,
  options: { ignoreCache?: boolean } = {},
): CachedScript {
  const bytes = readFileSync(file)
  const digest = createHash('sha256').update(bytes).digest()
  let cachedData: Buffer | undefined
  if (!options.ignoreCache) {
    try {
      const cache = readFileSync(cacheFile)
      if (cache.subarray(0, digest.length).equals(digest)) cachedData = cache.subarray(digest.length)
    } catch {}
  }
  const script = new Script(
    // Latin-1 is exact for ASCII, and faster to decode than UTF-8.
    `(function (exports, require, module, __filename, __dirname) {${bytes.toString('latin1').replace(/^#!.*/, '')}\n})`,
    {
      filename: file,
      cachedData,
      // Dynamic import() in the file works as in any CommonJS module.
      importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    },
  )
  return {
    cacheUsed: cachedData !== undefined && !script.cachedDataRejected,
    run() {
      const module = new Module(file)
      module.filename = file
      const wrapper = script.runInThisContext() as (...args: unknown[]) => void
      wrapper.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file))
      return module.exports
    },
    writeCache() {
      const temporary = `${cacheFile}.${process.pid}.tmp`
      writeFileSync(temporary, Buffer.concat([digest, script.createCachedData()]))
      renameSync(temporary, cacheFile)
    },
  }
}
