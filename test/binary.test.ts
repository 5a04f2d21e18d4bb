// The single binary's parts that run in-process (the binary itself is built and
// driven by test/binary.e2e.ts, `npm run test:binary`): its route loader gives
// the same routes, hooks and OpenAPI document as @fastify/autoload, its file
// cache checks what it reuses and every directory on its way, it loads an addon
// from the very file it hashed, and its cache directory follows the documented
// order. (Another local user racing the binary itself: test/binary.e2e.ts.)
import { createHash } from 'node:crypto'
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { cacheDirectoryProblem, cacheDirectorySource } from '../scripts/binary/cache-directory.js'
import {
  bundledImportMeta,
  bundledPath,
  type EmbeddedFiles,
  loadEmbeddedAddon,
  privateDirectory,
  unpackEmbeddedFiles,
  unpackedFiles,
  useUnpackedFiles,
} from '../scripts/binary/embedded.js'
import { writeRouteManifest } from '../scripts/bundle/route-manifest.js'
import { type RouteFolder, staticAutoload } from '../scripts/bundle/static-autoload.js'
import { buildApp, ROUTES_AUTOLOAD } from '../src/app.js'
import { loadConfig, nativeCacheDir } from '../src/config.js'
import { TEST_ENV, tempDir } from './helper.js'

t.test('routes from the generated manifest equal the auto-loaded ones', async (t) => {
  const dir = tempDir(t)
  const manifest = path.join(dir, 'routes.generated.ts')
  const files = writeRouteManifest(ROUTES_AUTOLOAD, manifest)
  t.ok(
    files.some((file) => file.endsWith(path.join('users', 'autohooks.ts'))),
    'hook files are listed',
  )
  const { routeFolders } = (await import(pathToFileURL(manifest).href)) as { routeFolders: RouteFolder[] }
  // What the bundle does: src/app.ts with @fastify/autoload replaced by the manifest's loader.
  const bundled = await t.mockImport<typeof import('../src/app.js')>('../src/app.js', {
    '@fastify/autoload': { default: staticAutoload(routeFolders) },
  })

  const config = (name: string) => loadConfig({ env: { ...TEST_ENV, DATA_DIR: path.join(dir, name) }, cwd: dir })
  const autoloaded = await buildApp(config('autoloaded'))
  t.teardown(() => autoloaded.close())
  const fromManifest = await bundled.buildApp(config('manifest'))
  t.teardown(() => fromManifest.close())

  // Hook names included: a route that lost its folder's autohooks would differ.
  const table = (app: typeof autoloaded) => app.printRoutes({ commonPrefix: false, includeHooks: true })
  t.match(table(autoloaded), /authenticate\(\)/, 'the table shows the protecting hook')
  t.equal(table(fromManifest), table(autoloaded), 'same route table, same hooks, same order')
  const openapi = async (app: typeof autoloaded) => (await app.inject('/openapi.json')).json()
  t.same(await openapi(fromManifest), await openapi(autoloaded), 'same OpenAPI document')
})

t.test('embedded files are unpacked privately, verified, and rewritten when altered', async (t) => {
  const dir = tempDir(t)
  const cacheDir = path.join(dir, 'cache')
  const assets: Record<string, Buffer> = {
    'package.json': Buffer.from('{"version":"1.2.3"}'),
    'node_modules/addon/addon.node': Buffer.from('not really an addon'),
  }
  const embedded: EmbeddedFiles = {
    id: '1.2.3-test',
    files: Object.entries(assets).map(([key, data]) => ({
      path: key,
      sha256: createHash('sha256').update(data).digest('hex'),
      executable: key.endsWith('.node'),
    })),
  }
  let reads = 0
  const readAsset = (key: string) => {
    reads++
    const data = assets[key] ?? Buffer.alloc(0)
    return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer
  }

  const root = unpackEmbeddedFiles(cacheDir, embedded, readAsset)
  t.equal(root, path.join(cacheDir, '1.2.3-test'))
  t.equal(statSync(cacheDir).mode & 0o777, 0o700, 'cache directory is 0700')
  t.equal(statSync(root).mode & 0o777, 0o700)
  t.equal(readFileSync(path.join(root, 'package.json'), 'utf8'), '{"version":"1.2.3"}')
  t.equal(statSync(path.join(root, 'node_modules/addon/addon.node')).mode & 0o777, 0o700)
  t.equal(statSync(path.join(root, 'package.json')).mode & 0o777, 0o600)
  t.equal(bundledPath('public/index.html'), path.join(root, 'public', 'index.html'))
  t.same(bundledImportMeta('src/version.ts'), {
    url: pathToFileURL(path.join(root, 'src', 'version.ts')).href,
    filename: path.join(root, 'src', 'version.ts'),
    dirname: path.join(root, 'src'),
  })

  reads = 0
  const inode = statSync(path.join(root, 'package.json')).ino
  unpackEmbeddedFiles(cacheDir, embedded, readAsset)
  t.equal(reads, 0, 'intact files are reused')
  t.equal(statSync(path.join(root, 'package.json')).ino, inode)

  writeFileSync(path.join(root, 'node_modules/addon/addon.node'), 'tampered')
  unpackEmbeddedFiles(cacheDir, embedded, readAsset)
  t.equal(reads, 1, 'only the altered file is written again')
  t.equal(readFileSync(path.join(root, 'node_modules/addon/addon.node'), 'utf8'), 'not really an addon')

  const damaged = { ...embedded, id: 'damaged', files: embedded.files.map((file) => ({ ...file, sha256: '0' })) }
  t.throws(() => unpackEmbeddedFiles(cacheDir, damaged, readAsset), /the binary is damaged/)

  // A symbolic link in the place of a file is replaced, never followed.
  const elsewhere = path.join(dir, 'elsewhere.json')
  writeFileSync(elsewhere, '{"version":"1.2.3"}')
  const packageJson = path.join(root, 'package.json')
  renameSync(elsewhere, `${packageJson}.link-target`)
  symlinkSync(`${packageJson}.link-target`, `${packageJson}.new`)
  renameSync(`${packageJson}.new`, packageJson)
  reads = 0
  unpackEmbeddedFiles(cacheDir, embedded, readAsset)
  t.equal(reads, 1, 'the linked file is written again')
  t.ok(lstatSync(packageJson).isFile(), 'as a file of its own')

  chmodSync(cacheDir, 0o770)
  t.throws(() => unpackEmbeddedFiles(cacheDir, embedded, readAsset), /writable by other users/)
})

/** `files` as the binary's list (hashes included) and a reader of them. */
function assetsOf(id: string, files: Record<string, Buffer>) {
  const embedded: EmbeddedFiles = {
    id,
    files: Object.entries(files).map(([key, data]) => ({
      path: key,
      sha256: createHash('sha256').update(data).digest('hex'),
      executable: key.endsWith('.node'),
    })),
  }
  const readAsset = (key: string) => {
    const data = files[key] ?? Buffer.alloc(0)
    return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer
  }
  return { embedded, readAsset }
}

t.test('the cache directory and every directory above it must be safe', async (t) => {
  const dir = realpathSync(tempDir(t))
  const { embedded, readAsset } = assetsOf('1.2.3-test', { 'package.json': Buffer.from('{}') })
  const unpack = (cacheDir: string) => unpackEmbeddedFiles(cacheDir, embedded, readAsset)

  t.equal(privateDirectory(path.join(dir, 'a', 'b')), path.join(dir, 'a', 'b'), 'missing directories are made')
  t.equal(statSync(path.join(dir, 'a')).mode & 0o777, 0o700, '0700')

  const target = path.join(dir, 'real-cache')
  mkdirSync(target, { mode: 0o700 })
  symlinkSync(target, path.join(dir, 'link'))
  t.throws(() => unpack(path.join(dir, 'link')), /link is a symbolic link/, 'the cache directory is never a link')
  t.equal(
    unpack(path.join(dir, 'link', 'cache')),
    path.join(target, 'cache', '1.2.3-test'),
    "an ancestor that is this user's link is followed, and the real path used",
  )

  const shared = path.join(dir, 'shared')
  mkdirSync(shared, { mode: 0o700 })
  chmodSync(shared, 0o777)
  t.throws(() => unpack(path.join(shared, 'cache')), /shared is writable by other users \(mode 0777\)/)
  chmodSync(shared, 0o775)
  t.throws(() => unpack(path.join(shared, 'cache')), /writable by other users/, 'group-writable too')
  chmodSync(shared, 0o1777)
  t.equal(
    unpack(path.join(shared, 'cache')),
    path.join(shared, 'cache', '1.2.3-test'),
    'a sticky one, like /tmp, is safe: nobody else can move what it holds',
  )

  const file = path.join(dir, 'file')
  writeFileSync(file, '')
  t.throws(() => unpack(path.join(file, 'cache')), /file is not a directory/)
  t.throws(() => unpack(file), /file is not a directory/)

  const asRoot = { skip: process.getuid?.() === 0 ? false : 'needs root, to give files to another user' }
  await t.test('another user: their directory, their link, or a cache directory of theirs', asRoot, async (t) => {
    const nobody = 65534
    const theirs = path.join(dir, 'theirs')
    mkdirSync(theirs, { mode: 0o755 })
    chownSync(theirs, nobody, nobody)
    t.throws(() => unpack(path.join(theirs, 'cache')), /theirs belongs to another user \(uid 65534/)

    const inSticky = path.join(shared, 'planted')
    symlinkSync(target, inSticky)
    lchownSync(inSticky, nobody, nobody)
    t.throws(
      () => unpack(path.join(inSticky, 'cache')),
      /planted is a symbolic link of another user \(uid 65534/,
      'a link planted in a sticky directory by someone else is not followed',
    )

    const planted = path.join(shared, 'their-cache')
    mkdirSync(planted, { mode: 0o700 })
    chownSync(planted, nobody, nobody)
    t.throws(() => unpack(planted), /their-cache belongs to another user/, 'nor a cache directory they made first')
  })
})

t.test('an addon loads from the very file whose hash was checked, whatever its path names later', async (t) => {
  const require = createRequire(import.meta.url)
  const argon2 = path.dirname(require.resolve('argon2/package.json'))
  const nodeGypBuild = createRequire(path.join(argon2, 'package.json'))('node-gyp-build') as {
    resolve(dir: string): string
  }
  const key = 'node_modules/argon2/fd-test.node'
  const { embedded, readAsset } = assetsOf('fd-test', { [key]: readFileSync(nodeGypBuild.resolve(argon2)) })
  const root = unpackEmbeddedFiles(path.join(tempDir(t), 'cache'), embedded, readAsset)
  const { addons } = unpackedFiles()
  if (existsSync('/proc/self/fd')) t.match(addons[key], /^\/proc\/self\/fd\/\d+$/, 'by its open descriptor')

  // What an attacker who could write to an ancestor did between the check and
  // the load: put another file at the path. Here, one that is no addon at all
  // (loading it would fail with "invalid ELF header").
  const file = path.join(root, ...key.split('/'))
  writeFileSync(`${file}.swap`, 'not an ELF file')
  renameSync(`${file}.swap`, file)
  const exports = loadEmbeddedAddon(key) as { hash?: unknown }
  t.type(exports.hash, 'function', 'the verified addon is loaded')

  // A worker thread is given the same names, and loads the same file.
  useUnpackedFiles(unpackedFiles())
  t.same(unpackedFiles().addons, addons)
})

t.test('an unusable cache directory is reported with the variable that chose it', async (t) => {
  const cwd = tempDir(t)
  const home = tempDir(t)
  const source = (env: Record<string, string>) => cacheDirectorySource({ env, cwd })
  t.equal(source({ LATCHKEY_NATIVE_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x', HOME: home }), 'LATCHKEY_NATIVE_CACHE_DIR')
  t.equal(source({ XDG_CACHE_HOME: '/x', HOME: home }), 'XDG_CACHE_HOME')
  t.equal(source({ HOME: home }), 'HOME')
  t.equal(source({ HOME: '/nonexistent', DATA_DIR: '/srv/data' }), 'DATA_DIR')
  t.equal(source({}), 'DATA_DIR')
  writeFileSync(path.join(cwd, '.env'), 'LATCHKEY_NATIVE_CACHE_DIR=/opt/cache\n')
  t.equal(source({ HOME: home }), 'LATCHKEY_NATIVE_CACHE_DIR', 'also from .env')

  const error = Object.assign(new Error("EACCES: permission denied, mkdir '/srv/data/cache'"), { code: 'EACCES' })
  t.equal(
    cacheDirectoryProblem('/srv/data/cache', error, { env: { DATA_DIR: '/srv/data' }, cwd: home }),
    "cannot unpack the native addons into /srv/data/cache, in DATA_DIR (/srv/data) since neither LATCHKEY_NATIVE_CACHE_DIR, XDG_CACHE_HOME nor HOME names a cache: EACCES: permission denied, mkdir '/srv/data/cache'; set DATA_DIR, or LATCHKEY_NATIVE_CACHE_DIR for the addons alone, to a directory this user can write and no other user can change",
  )
  t.match(
    cacheDirectoryProblem(path.join(home, '.cache', 'latchkey'), error, { env: { HOME: home }, cwd: home }),
    /^cannot unpack the native addons into .*\/\.cache\/latchkey \(from HOME\): EACCES.*; set LATCHKEY_NATIVE_CACHE_DIR to /,
  )
})

t.test('the native cache directory: explicit, XDG, home, then the data directory', async (t) => {
  const cwd = tempDir(t)
  const home = tempDir(t)
  const dir = (env: Record<string, string>) => nativeCacheDir({ env, cwd })
  t.equal(dir({ LATCHKEY_NATIVE_CACHE_DIR: 'native', HOME: home }), path.join(cwd, 'native'))
  t.equal(dir({ XDG_CACHE_HOME: '/var/cache/x', HOME: home }), '/var/cache/x/latchkey')
  t.equal(
    dir({ XDG_CACHE_HOME: 'relative', HOME: home }),
    path.join(home, '.cache', 'latchkey'),
    'relative XDG ignored',
  )
  t.equal(dir({ HOME: home }), path.join(home, '.cache', 'latchkey'))
  t.equal(dir({ HOME: '/nonexistent' }), path.join(cwd, 'data', 'cache'), 'a home that does not exist is skipped')
  t.equal(dir({}), path.join(cwd, 'data', 'cache'))
  t.equal(dir({ DATA_DIR: '/srv/latchkey' }), '/srv/latchkey/cache')
  writeFileSync(path.join(cwd, '.env'), 'LATCHKEY_NATIVE_CACHE_DIR=/opt/cache\n')
  t.equal(dir({ HOME: home }), '/opt/cache', '.env is read as by loadConfig')
})
