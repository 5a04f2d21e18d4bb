// What the single binary says when it cannot use its native cache directory:
// the directory, why, and the variable to set. The directory is the first of
// LATCHKEY_NATIVE_CACHE_DIR, $XDG_CACHE_HOME/latchkey, $HOME/.cache/latchkey and
// <DATA_DIR>/cache (nativeCacheDir() in src/config.ts), so the variable to name
// is the one that chose it.
import path from 'node:path'
import { type LoadConfigOptions, nativeCacheDir } from '../../src/config.js'

const CHOOSERS = ['LATCHKEY_NATIVE_CACHE_DIR', 'XDG_CACHE_HOME', 'HOME'] as const
export type CacheDirectorySource = (typeof CHOOSERS)[number] | 'DATA_DIR'

/**
 * The variable that chose `nativeCacheDir(options)`: the first whose removal
 * (an empty value, which also hides it in `.env`) changes the answer.
 */
export function cacheDirectorySource(options: LoadConfigOptions = {}): CacheDirectorySource {
  const env = { ...(options.env ?? process.env) }
  const chosen = nativeCacheDir({ ...options, env })
  for (const name of CHOOSERS) {
    env[name] = ''
    if (nativeCacheDir({ ...options, env }) !== chosen) return name
  }
  return 'DATA_DIR'
}

/** One line: `cacheDir` (from `options`' environment) cannot be used, because of `error`. */
export function cacheDirectoryProblem(cacheDir: string, error: unknown, options: LoadConfigOptions = {}): string {
  const reason = (error as Error).message ?? String(error)
  const fix = 'a directory this user can write and no other user can change'
  if (cacheDirectorySource(options) === 'DATA_DIR') {
    return (
      `cannot unpack the native addons into ${cacheDir}, in DATA_DIR (${path.dirname(cacheDir)}) since neither ` +
      `LATCHKEY_NATIVE_CACHE_DIR, XDG_CACHE_HOME nor HOME names a cache: ${reason}; ` +
      `set DATA_DIR, or LATCHKEY_NATIVE_CACHE_DIR for the addons alone, to ${fix}`
    )
  }
  return (
    `cannot unpack the native addons into ${cacheDir} (from ${cacheDirectorySource(options)}): ${reason}; ` +
    `set LATCHKEY_NATIVE_CACHE_DIR to ${fix}`
  )
}
