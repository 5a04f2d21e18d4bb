// Run-time side of the single binary: the files it carries (native addons, the
// account page, Swagger UI's assets, package.json) are SEA assets. They are
// unpacked into a private cache directory, each under its repository path, so
// that code which finds files beside itself (`import.meta.dirname`, `__dirname`,
// rewritten per module by the build) finds them there, and the addons can be
// loaded with `process.dlopen`, which needs a real file.
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

export interface EmbeddedFile {
  /** Repository-relative path, with `/`; also the SEA asset key. */
  path: string
  sha256: string
  /** Native addons are written 0700, everything else 0600. */
  executable: boolean
}

export interface EmbeddedFiles {
  /** Names the set (version and a hash of every file), so builds never share files. */
  id: string
  files: EmbeddedFile[]
}

/** Where the running binary unpacked its files; set once per thread, before the app's modules load. */
let root: string | undefined
const addons = new Map<string, unknown>()

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')

/**
 * Creates `dir` (0700) if needed and refuses one that another user owns or may
 * write to: a file swapped in between its check and its use would run as us.
 */
function privateDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const stat = statSync(dir)
  if (!stat.isDirectory()) throw new Error(`${dir} is not a directory`)
  if (process.getuid && stat.uid !== process.getuid()) throw new Error(`${dir} belongs to another user`)
  if ((stat.mode & 0o022) !== 0) throw new Error(`${dir} is writable by other users (make it 0700)`)
}

function matches(file: string, expected: string): boolean {
  try {
    return sha256(readFileSync(file)) === expected
  } catch {
    return false
  }
}

/**
 * Unpacks `embedded` into `<cacheDir>/<id>/`, reusing each file already there
 * whose SHA-256 matches, and writing the others atomically (temporary file, then
 * rename), so a concurrent start or a crash never leaves a partial file in place.
 * Returns the directory, which stands for the repository root from then on.
 */
export function unpackEmbeddedFiles(
  cacheDir: string,
  embedded: EmbeddedFiles,
  readAsset: (key: string) => ArrayBuffer,
): string {
  privateDirectory(cacheDir)
  const dir = path.join(cacheDir, embedded.id)
  privateDirectory(dir)
  for (const file of embedded.files) {
    const target = path.join(dir, ...file.path.split('/'))
    if (matches(target, file.sha256)) continue
    const data = new Uint8Array(readAsset(file.path))
    if (sha256(data) !== file.sha256) throw new Error(`the binary is damaged: ${file.path} does not match its hash`)
    mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 })
    const temporary = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
    try {
      writeFileSync(temporary, data, { mode: file.executable ? 0o700 : 0o600, flag: 'wx' })
      renameSync(temporary, target)
    } catch (error) {
      rmSync(temporary, { force: true })
      throw error
    }
  }
  root = dir
  return dir
}

/** In a worker thread: use the files the main thread unpacked (and verified) into `dir`. */
export function useUnpackedFiles(dir: string): void {
  root = dir
}

/** The unpacked file or directory standing at `relative` in the repository. */
export function bundledPath(relative: string): string {
  if (root === undefined) throw new Error(`bundledPath(${relative}) called before the binary unpacked its files`)
  return path.join(root, ...relative.split('/'))
}

/** What `import.meta` holds for the repository file `relative`, in the binary. */
export function bundledImportMeta(relative: string): { url: string; filename: string; dirname: string } {
  const filename = bundledPath(relative)
  return { url: pathToFileURL(filename).href, filename, dirname: path.dirname(filename) }
}

/** Loads the unpacked native addon at `relative` (its hash was checked when unpacked). */
export function loadEmbeddedAddon(relative: string): unknown {
  let exports = addons.get(relative)
  if (exports === undefined) {
    const file = bundledPath(relative)
    const module = { exports: {} }
    try {
      process.dlopen(module, file)
    } catch (error) {
      // The usual cause: the cache directory is on a filesystem mounted noexec.
      throw new Error(
        `cannot load the native addon ${file}: ${(error as Error).message}; set LATCHKEY_NATIVE_CACHE_DIR to a directory on a filesystem that allows executables`,
      )
    }
    exports = module.exports
    addons.set(relative, exports)
  }
  return exports
}
