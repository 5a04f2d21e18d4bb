// Run-time side of the single binary: the files it carries (native addons, the
// account page, Swagger UI's assets) are SEA assets. They are unpacked into a
// private cache directory, each under its repository path, so that code which
// finds files beside itself (`import.meta.dirname`, `__dirname`, rewritten per
// module by the build) finds them there, and the addons can be loaded with
// `process.dlopen`, which needs a real file.
//
// The addons run inside the server, often as root, so nobody else may choose
// what is loaded:
// - every directory from `/` down to the cache directory belongs to root or to
//   us and is writable by nobody else (a sticky one such as /tmp excepted, where
//   nobody else can move or replace what we own); symbolic links on the way are
//   followed only if they belong to root or to us, and the cache directory
//   itself, and everything in it, is never one;
// - an addon is opened with O_NOFOLLOW, its hash is checked through that file
//   descriptor, and the very file behind it is loaded, through
//   /proc/self/fd/<fd>: renaming or linking another file at its path afterwards
//   changes nothing. The descriptor stays open for the life of the process.
// Nothing happens before the first use (`bundledPath`, `loadEmbeddedAddon`), so
// `latchkey --help` and `--version` unpack nothing and create nothing.
import { createHash, randomBytes } from 'node:crypto'
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  type Stats,
  writeFileSync,
} from 'node:fs'
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

interface Unpacked {
  /** The directory standing for the repository root. */
  root: string
  /** Repository path of each addon -> what to give `process.dlopen` for it. */
  addons: Map<string, string>
}

/** Where this thread finds the files; set on first use (main thread) or by `useUnpackedFiles` (a worker). */
let unpacked: Unpacked | undefined
let unpackOnFirstUse: (() => string) | undefined
/** Exports of the addons this thread loaded. */
const loaded = new Map<string, unknown>()
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')
const uid = (): number | undefined => process.getuid?.()

/** Writable by group or others (group write is also what an ACL granting write to anyone shows). */
const sharedWrite = (stat: Stats): boolean => (stat.mode & 0o022) !== 0
const sticky = (stat: Stats): boolean => (stat.mode & 0o1000) !== 0
const modeText = (stat: Stats): string => (stat.mode & 0o7777).toString(8).padStart(4, '0')
const ownerText = (stat: Stats): string => `uid ${stat.uid}, not root or this user (uid ${uid()})`

/** Why `dir`, on the way to the cache, is unsafe, if it is. */
function unsafeAncestor(dir: string, stat: Stats): string | undefined {
  if (!stat.isDirectory()) return `${dir} is not a directory`
  if (stat.uid !== 0 && stat.uid !== uid()) return `${dir} belongs to another user (${ownerText(stat)})`
  if (sharedWrite(stat) && !sticky(stat)) {
    return `${dir} is writable by other users (mode ${modeText(stat)})`
  }
  return undefined
}

/** Why `dir`, the cache directory or one inside it, is not private, if it is not. */
function notPrivate(dir: string, stat: Stats): string | undefined {
  if (stat.isSymbolicLink()) return `${dir} is a symbolic link`
  if (!stat.isDirectory()) return `${dir} is not a directory`
  if (stat.uid !== uid()) return `${dir} belongs to another user (uid ${stat.uid}, not this user's ${uid()})`
  if (sharedWrite(stat)) return `${dir} is writable by other users (mode ${modeText(stat)}; make it 0700)`
  return undefined
}

function lstatIfAny(file: string): Stats | undefined {
  try {
    return lstatSync(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** `dir`'s entry, made (0700) if missing; whoever made it, it is checked by the caller. */
function lstatOrCreate(dir: string): Stats {
  const stat = lstatIfAny(dir)
  if (stat) return stat
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  return lstatSync(dir)
}

/**
 * Walks from `/` to the absolute path `dir`, creating what is missing (0700),
 * and returns its real path once every directory on the way is safe (see the
 * top of this file) and `dir` itself is private. Each step is checked before
 * the next: a directory that only root or we can change cannot have its entries
 * replaced by anyone else, so what was checked stays what is used.
 */
export function privateDirectory(dir: string): string {
  if (!path.isAbsolute(dir)) throw new Error(`${dir} is not an absolute path`)
  const fail = (reason: string): never => {
    throw new Error(reason)
  }
  const pending = dir.split('/').filter((name) => name !== '' && name !== '.')
  let current = '/'
  const rootReason = unsafeAncestor(current, lstatSync(current))
  if (rootReason) fail(rootReason)
  let links = 0
  while (pending.length > 0) {
    const name = pending.shift() as string
    if (name === '..') {
      current = path.dirname(current)
      continue
    }
    const next = path.join(current, name)
    const stat = lstatOrCreate(next)
    if (pending.length === 0) {
      const reason = notPrivate(next, stat)
      if (reason) fail(reason)
      return next
    }
    if (stat.isSymbolicLink()) {
      // It sits in `current`, already checked: only root or we could have made it
      // there, or, in a sticky directory, its owner, checked here.
      if (stat.uid !== 0 && stat.uid !== uid()) fail(`${next} is a symbolic link of another user (${ownerText(stat)})`)
      if (++links > 40) fail(`${dir}: too many symbolic links`)
      const target = readlinkSync(next)
      if (path.isAbsolute(target)) current = '/'
      pending.unshift(...target.split('/').filter((part) => part !== '' && part !== '.'))
      continue
    }
    const reason = unsafeAncestor(next, stat)
    if (reason) fail(reason)
    current = next
  }
  // `dir` was `/`, or a link to it.
  return fail(`${dir} is /, which cannot be the cache directory`)
}

/**
 * Opens `file` without following a symbolic link and returns its descriptor if
 * it is a regular file of ours that nobody else can write, holding `expected`
 * (hashed through the descriptor); otherwise undefined.
 */
function openVerified(file: string, expected: string): number | undefined {
  let fd: number
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch {
    return undefined // missing, or a symbolic link (ELOOP): written again
  }
  try {
    const stat = fstatSync(fd)
    if (stat.isFile() && stat.uid === uid() && !sharedWrite(stat) && sha256(readFileSync(fd)) === expected) {
      const verified = fd
      fd = -1
      return verified
    }
    return undefined
  } finally {
    if (fd >= 0) closeSync(fd)
  }
}

/** The name to load an addon by: the open file itself where /proc gives it one (Linux), else its checked path. */
function loadName(fd: number, file: string): string {
  const name = `/proc/self/fd/${fd}`
  return existsSync(name) ? name : file
}

/**
 * Unpacks `embedded` into `<cacheDir>/<id>/`, reusing each file already there
 * whose SHA-256 matches, and writing the others atomically (temporary file, then
 * rename), so a concurrent start or a crash never leaves a partial file in place.
 * The addons stay open, verified, for `loadEmbeddedAddon`. Returns the
 * directory, which stands for the repository root from then on.
 */
export function unpackEmbeddedFiles(
  cacheDir: string,
  embedded: EmbeddedFiles,
  readAsset: (key: string) => ArrayBuffer,
): string {
  const dir = path.join(privateDirectory(path.resolve(cacheDir)), embedded.id)
  const reason = notPrivate(dir, lstatOrCreate(dir))
  if (reason) throw new Error(reason)
  const addons = new Map<string, string>()
  for (const file of embedded.files) {
    // Below `dir`, which only we can change: the directories we make are ours.
    const target = path.join(dir, ...file.path.split('/'))
    let fd = openVerified(target, file.sha256)
    if (fd === undefined) {
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
      fd = openVerified(target, file.sha256)
      if (fd === undefined) throw new Error(`${target} changed as it was written`)
    }
    // An addon's descriptor is never closed: the name `/proc/self/fd/<fd>` must
    // keep meaning that file for the life of the process. glibc's dlopen returns
    // the library already loaded under a name it is given again, without opening
    // anything, so a closed and reused number would give a later load (another
    // addon, or a worker's) the wrong library.
    if (file.executable) addons.set(file.path, loadName(fd, target))
    else closeSync(fd)
  }
  unpacked = { root: dir, addons }
  return dir
}

/**
 * Main thread: unpack with `unpack` (which calls `unpackEmbeddedFiles`) when a
 * file is first needed, and not before.
 */
export function unpackWhenFirstNeeded(unpack: () => string): void {
  unpackOnFirstUse = unpack
}

function current(what: string): Unpacked {
  if (unpacked === undefined) {
    if (unpackOnFirstUse === undefined) throw new Error(`${what} needed before the binary unpacked its files`)
    unpackOnFirstUse() // throws, and throws again on the next use, if it cannot
  }
  return unpacked as Unpacked
}

/** For a worker thread: where the main thread unpacked the files, and the names its addons load by. */
export function unpackedFiles(): { root: string; addons: Record<string, string> } {
  const { root, addons } = current('the unpacked files')
  return { root, addons: Object.fromEntries(addons) }
}

/** In a worker thread: use the files the main thread unpacked and verified (`unpackedFiles()`). */
export function useUnpackedFiles(files: { root: string; addons: Record<string, string> }): void {
  unpacked = { root: files.root, addons: new Map(Object.entries(files.addons)) }
}

/** The unpacked file or directory standing at `relative` in the repository. */
export function bundledPath(relative: string): string {
  return path.join(current(relative).root, ...relative.split('/'))
}

/** What `import.meta` holds for the repository file `relative`, in the binary. */
export function bundledImportMeta(relative: string): { url: string; filename: string; dirname: string } {
  const filename = bundledPath(relative)
  return { url: pathToFileURL(filename).href, filename, dirname: path.dirname(filename) }
}

/** Loads the native addon at `relative`: the very file whose hash was checked. */
export function loadEmbeddedAddon(relative: string): unknown {
  let exports = loaded.get(relative)
  if (exports === undefined) {
    const name = current(relative).addons.get(relative)
    if (name === undefined) throw new Error(`${relative} is not an addon the binary carries`)
    const module = { exports: {} }
    try {
      process.dlopen(module, name)
    } catch (error) {
      // The usual cause: the cache directory is on a filesystem mounted noexec.
      throw new Error(
        `cannot load the native addon ${bundledPath(relative)}: ${(error as Error).message}; set LATCHKEY_NATIVE_CACHE_DIR to a directory on a filesystem that allows executables`,
      )
    }
    exports = module.exports
    loaded.set(relative, exports)
  }
  return exports
}
