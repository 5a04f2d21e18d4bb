// The single binary's entry point (bundled by scripts/build-binary.ts): unpack
// what the binary carries, then run the same CLI as `node dist/latchkey.cjs`.
import { getRawAsset } from 'node:sea'
import { nativeCacheDir } from '../../src/config.js'
import { type EmbeddedFiles, unpackEmbeddedFiles } from './embedded.js'

/** The list of embedded files, written into the bundle by the build (esbuild `define`). */
declare const EMBEDDED_FILES: EmbeddedFiles

function fail(error: unknown): never {
  process.stderr.write(`latchkey: ${(error as Error).message ?? String(error)}\n`)
  process.exit(1)
}

let cacheDir = ''
try {
  cacheDir = nativeCacheDir()
  unpackEmbeddedFiles(cacheDir, EMBEDDED_FILES, getRawAsset)
} catch (error) {
  fail(
    new Error(
      `cannot unpack its native addons and files into ${cacheDir || 'the cache directory'} (set LATCHKEY_NATIVE_CACHE_DIR to a private, writable directory): ${(error as Error).message}`,
    ),
  )
}

// Imported only now: argon2 loads its addon as its module loads, and modules
// find their files (public/, package.json) under the directory unpacked above.
import('../../src/cli.js').catch(fail)
