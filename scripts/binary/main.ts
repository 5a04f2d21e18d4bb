// The single binary's entry point (bundled by scripts/build-binary.ts): the same
// CLI as `node dist/latchkey.cjs`, whose modules find the files the binary
// carries (native addons, public/, Swagger UI's assets) in its cache directory.
// Nothing is unpacked here: the first module that needs a file unpacks them all
// (embedded.ts), so `--help`, `--version` and a bad configuration, which the CLI
// answers before it loads the server's modules, touch no file.
import { getRawAsset } from 'node:sea'
import { nativeCacheDir } from '../../src/config.js'
import { cacheDirectoryProblem } from './cache-directory.js'
import { type EmbeddedFiles, unpackEmbeddedFiles, unpackWhenFirstNeeded } from './embedded.js'

/** The list of embedded files, written into the bundle by the build (esbuild `define`). */
declare const EMBEDDED_FILES: EmbeddedFiles

unpackWhenFirstNeeded(() => {
  const cacheDir = nativeCacheDir()
  try {
    return unpackEmbeddedFiles(cacheDir, EMBEDDED_FILES, getRawAsset)
  } catch (error) {
    throw new Error(cacheDirectoryProblem(cacheDir, error))
  }
})

import('../../src/cli.js').catch((error: unknown) => {
  process.stderr.write(`latchkey: ${(error as Error).message ?? String(error)}\n`)
  process.exit(1)
})
