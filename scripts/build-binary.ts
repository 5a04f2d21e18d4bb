// `npm run build:binary`: the whole app as one executable, dist/latchkey, a Node
// single executable application (SEA) for the OS, CPU and C library of this machine.
//
// 1. esbuild bundles binary/main.ts and everything it imports into one CommonJS
//    file (the SEA format of Node 20), as `npm run build` bundles the server
//    (bundle/esbuild.ts: routes/ as static imports, repository paths per module).
// 2. Files read at run time (native addons, public/, Swagger UI's assets)
//    become SEA assets, unpacked on first use into a private cache
//    (binary/embedded.ts), which stands for the repository in the bundle. The
//    version is compiled in (`--version` reads no file). The
//    session cleanup's worker thread is bundled on its own and carried as one
//    more asset, which the worker runs from memory (binary/cleanup-worker.ts).
// 3. `node --experimental-sea-config` makes the blob (with V8's code cache) and
//    postject injects it into a copy of this node executable.
// Generated files go to dist/binary/, which is never committed (dist/ is ignored).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import * as esbuild from 'esbuild'
import { VENDOR_FILES } from '../plugins/account-page.js'
import { ROUTES_AUTOLOAD } from '../src/app.js'
import { CLEANUP_WORKER_ASSET } from './binary/cleanup-worker-script.js'
import type { EmbeddedFile, EmbeddedFiles } from './binary/embedded.js'
import {
  BUNDLE_OPTIONS,
  cleanupWorkerScriptPlugin,
  ROOT,
  repositoryPath,
  repositoryPathsPlugin,
  staticRoutesPlugin,
} from './bundle/esbuild.js'
import { writeRouteManifest } from './bundle/route-manifest.js'

const require = createRequire(import.meta.url)
const { inject } = require('postject') as {
  inject(file: string, name: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>
}
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
const EMBEDDED_TS = path.join(import.meta.dirname, 'binary', 'embedded.ts')

const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`))

/**
 * The native addons, each loaded through the module its package imports for the
 * purpose; the bundle replaces that import, for that package only, with a loader
 * of the unpacked copy. The file is the one the package itself would load.
 */
function nativeAddons(): { dir: string; loader: string; file: string }[] {
  const sqlite = packageDir('better-sqlite3')
  const argon2 = packageDir('argon2')
  const nodeGypBuild = createRequire(path.join(argon2, 'package.json'))('node-gyp-build') as {
    resolve(dir: string): string
  }
  const addons = [
    { dir: sqlite, loader: 'bindings', file: path.join(sqlite, 'build', 'Release', 'better_sqlite3.node') },
    { dir: argon2, loader: 'node-gyp-build', file: nodeGypBuild.resolve(argon2) },
  ]
  for (const { file } of addons) {
    if (!existsSync(file)) throw new Error(`${file} is missing: install the dependencies (npm ci) first`)
  }
  return addons
}

/** Folders that bundled code reads at run time from beside itself. */
function embeddedFolders(): string[] {
  return [
    path.join(ROOT, 'public'), // the account page (plugins/account-page.ts)
    path.join(packageDir('@fastify/swagger-ui'), 'static'), // Swagger UI at /docs
  ]
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort()
}

function embeddedFiles(version: string, addonFiles: string[]): { list: EmbeddedFiles; sources: Map<string, string> } {
  const sources = new Map<string, string>()
  const add = (file: string) => sources.set(repositoryPath(file), file)
  for (const file of addonFiles) add(file)
  // The account page's libraries (plugins/account-page.ts).
  for (const relative of Object.values(VENDOR_FILES)) add(path.join(ROOT, ...relative.split('/')))
  for (const dir of embeddedFolders()) {
    try {
      if (!statSync(dir).isDirectory()) continue
    } catch {
      continue
    }
    for (const file of filesUnder(dir)) add(file)
  }
  const files: EmbeddedFile[] = [...sources].map(([key, file]) => ({
    path: key,
    sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
    executable: file.endsWith('.node'),
  }))
  const id = createHash('sha256')
    .update(files.map((file) => `${file.path} ${file.sha256}\n`).join(''))
    .digest('hex')
    .slice(0, 16)
  return { list: { id: `${version}-${id}`, files }, sources }
}

/**
 * src/version.ts reads package.json beside itself as it loads; in the binary
 * the version is the build's, so that `--version` and `--help` touch no file.
 */
function versionPlugin(version: string): esbuild.Plugin {
  const original = path.join(ROOT, 'src', 'version.ts')
  return {
    name: 'latchkey-version',
    setup(build) {
      build.onLoad({ filter: /[\\/]version\.ts$/ }, (args) =>
        args.path === original
          ? { contents: `export const version = ${JSON.stringify(version)}\n`, loader: 'ts' }
          : undefined,
      )
    },
  }
}

/** Replaces the addon loaders (`bindings`, `node-gyp-build`) of known packages; fails on any other addon. */
function nativeAddonsPlugin(addons: ReturnType<typeof nativeAddons>): esbuild.Plugin {
  return {
    name: 'latchkey-native-addons',
    setup(build) {
      build.onResolve({ filter: /^(bindings|node-gyp-build|node-gyp-build-optional-packages)$/ }, (args) => {
        const addon = addons.find(
          (entry) => args.importer.startsWith(entry.dir + path.sep) && entry.loader === args.path,
        )
        if (!addon) {
          return {
            errors: [{ text: `${args.importer} loads a native addon with ${args.path}: add it to nativeAddons()` }],
          }
        }
        return { path: repositoryPath(addon.file), namespace: 'latchkey-addon' }
      })
      build.onResolve({ filter: /\.node$/ }, (args) => ({
        errors: [{ text: `${args.importer} requires the native addon ${args.path}: add it to nativeAddons()` }],
      }))
      build.onLoad({ filter: /.*/, namespace: 'latchkey-addon' }, (args) => ({
        // Both loaders are called as a function returning the addon's exports.
        contents: `const { loadEmbeddedAddon } = require(${JSON.stringify(EMBEDDED_TS)})
module.exports = () => loadEmbeddedAddon(${JSON.stringify(args.path)})`,
        resolveDir: ROOT,
        loader: 'js',
      }))
    },
  }
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

export interface BuildResult {
  file: string
  bytes: number
  bundleBytes: number
  embeddedBytes: number
  seconds: number
}

/** Builds dist/latchkey (or `output`); `log` receives one line per step. */
export async function buildBinary(
  options: { output?: string; log?: (line: string) => void } = {},
): Promise<BuildResult> {
  const started = performance.now()
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`))
  const output = options.output ?? path.join(ROOT, 'dist', 'latchkey')
  const workDir = path.join(ROOT, 'dist', 'binary')
  mkdirSync(workDir, { recursive: true })
  const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }

  const manifestFile = path.join(workDir, 'routes.generated.ts')
  const routeFiles = writeRouteManifest(ROUTES_AUTOLOAD, manifestFile)
  log(`routes: ${routeFiles.length} route and hook files -> ${path.relative(ROOT, manifestFile)}`)

  const addons = nativeAddons()
  const embedded = embeddedFiles(
    version,
    addons.map((addon) => addon.file),
  )
  const embeddedBytes = [...embedded.sources.values()].reduce((sum, file) => sum + statSync(file).size, 0)
  log(`embedded: ${embedded.list.files.length} files, ${megabytes(embeddedBytes)} (${embedded.list.id})`)

  const workerScript = path.join(import.meta.dirname, 'binary', 'cleanup-worker-script.ts')
  const bundleFile = path.join(workDir, 'latchkey.cjs')
  const result = await esbuild.build({
    ...BUNDLE_OPTIONS,
    entryPoints: [path.join(import.meta.dirname, 'binary', 'main.ts')],
    outfile: bundleFile,
    define: { EMBEDDED_FILES: JSON.stringify(embedded.list) },
    plugins: [
      staticRoutesPlugin(manifestFile),
      cleanupWorkerScriptPlugin(workerScript),
      nativeAddonsPlugin(addons),
      versionPlugin(version), // before repositoryPathsPlugin, whose onLoad would take the file
      repositoryPathsPlugin(EMBEDDED_TS),
    ],
  })
  const bundleBytes = statSync(bundleFile).size
  log(`bundle: ${Object.keys(result.metafile.inputs).length} modules, ${megabytes(bundleBytes)}`)

  const workerFile = path.join(workDir, CLEANUP_WORKER_ASSET)
  const workerResult = await esbuild.build({
    ...BUNDLE_OPTIONS,
    entryPoints: [path.join(import.meta.dirname, 'binary', 'cleanup-worker.ts')],
    outfile: workerFile,
    plugins: [
      cleanupWorkerScriptPlugin(workerScript),
      nativeAddonsPlugin(addons),
      versionPlugin(version),
      repositoryPathsPlugin(EMBEDDED_TS),
    ],
  })
  log(
    `cleanup worker: ${Object.keys(workerResult.metafile.inputs).length} modules, ${megabytes(statSync(workerFile).size)}`,
  )

  const seaConfigFile = path.join(workDir, 'sea-config.json')
  const blobFile = path.join(workDir, 'sea-prep.blob')
  const seaConfig = {
    main: bundleFile,
    output: blobFile,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: { ...Object.fromEntries(embedded.sources), [CLEANUP_WORKER_ASSET]: workerFile },
  }
  writeFileSync(seaConfigFile, `${JSON.stringify(seaConfig, null, 2)}\n`)
  execFileSync(process.execPath, ['--experimental-sea-config', seaConfigFile], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  log(`blob: ${megabytes(statSync(blobFile).size)} (code cache of node ${process.version})`)

  // Injected into a copy, renamed into place only when complete.
  const temporary = `${output}.${process.pid}.tmp`
  mkdirSync(path.dirname(output), { recursive: true })
  copyFileSync(process.execPath, temporary)
  try {
    await inject(temporary, 'NODE_SEA_BLOB', readFileSync(blobFile), { sentinelFuse: SEA_FUSE })
    renameSync(temporary, output)
  } catch (error) {
    rmSync(temporary, { force: true })
    throw error
  }
  const bytes = statSync(output).size
  const seconds = (performance.now() - started) / 1000
  log(`binary: ${path.relative(process.cwd(), output)}, ${megabytes(bytes)}, built in ${seconds.toFixed(1)} s`)
  return { file: output, bytes, bundleBytes, embeddedBytes, seconds }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildBinary().catch((error: unknown) => {
    process.stderr.write(`build-binary: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  })
}
