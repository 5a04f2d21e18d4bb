// The single binary's parts that run in-process (the binary itself is built and
// driven by test/binary.e2e.ts, `npm run test:binary`): its route loader gives
// the same routes, hooks and OpenAPI document as @fastify/autoload, its file
// cache checks what it reuses, and its cache directory follows the documented order.
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { bundledImportMeta, bundledPath, type EmbeddedFiles, unpackEmbeddedFiles } from '../scripts/binary/embedded.js'
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
  const { createHash } = await import('node:crypto')
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

  chmodSync(cacheDir, 0o770)
  t.throws(() => unpackEmbeddedFiles(cacheDir, embedded, readAsset), /writable by other users/)
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
