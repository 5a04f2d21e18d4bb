// Build time: what both bundles of the server share, `npm run build`'s
// dist/app.cjs (scripts/build.ts) and the single binary's (scripts/build-binary.ts).
// Each is one CommonJS file made by esbuild from src/cli.ts, in which
// - routes/ is a module of static imports (route-manifest.ts), registered by
//   static-autoload.ts where src/app.ts uses @fastify/autoload;
// - every module that finds files beside itself (`import.meta` in ES modules,
//   `__dirname` / `__filename` in CommonJS ones) is given the place it has in the
//   repository, resolved at run time by a module of the bundle's own.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type * as esbuild from 'esbuild'

export const ROOT = path.resolve(import.meta.dirname, '..', '..')

/** esbuild options of every bundle. */
export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: `node${process.versions.node}`,
  // No keepNames: it wraps every function created, per request too, in a call
  // that redefines its `name`, which cost about 15% of the CPU of a request. Names
  // change only where two modules' top-level names collide (`verify2`); plugins
  // are registered and depended on by their explicit fastify-plugin names.
  logLevel: 'warning',
  metafile: true,
} satisfies esbuild.BuildOptions

/** `file` relative to the repository, with `/`; fails for a file outside it. */
export function repositoryPath(file: string): string {
  const relative = path.relative(ROOT, file)
  if (relative.startsWith('..') || path.isAbsolute(relative)) throw new Error(`${file} is outside ${ROOT}`)
  return relative.split(path.sep).join('/')
}

/** In a bundle, @fastify/autoload (used by src/app.ts) registers the generated manifest. */
export function staticRoutesPlugin(manifestFile: string): esbuild.Plugin {
  return {
    name: 'latchkey-static-routes',
    setup(build) {
      build.onResolve({ filter: /^@fastify\/autoload$/ }, () => ({ path: 'routes', namespace: 'latchkey-routes' }))
      build.onLoad({ filter: /.*/, namespace: 'latchkey-routes' }, () => ({
        contents: [
          `import { staticAutoload } from ${JSON.stringify(path.join(import.meta.dirname, 'static-autoload.ts'))}`,
          `import { routeFolders } from ${JSON.stringify(manifestFile)}`,
          'export default staticAutoload(routeFolders)',
        ].join('\n'),
        resolveDir: ROOT,
        loader: 'ts',
      }))
    },
  }
}

/**
 * src/auth/cleanup-worker-script.ts finds the worker's module in the source
 * tree; each bundle replaces it with a module that knows where its own bundle of
 * the worker is (`replacement`).
 */
export function cleanupWorkerScriptPlugin(replacement: string): esbuild.Plugin {
  const original = path.join(ROOT, 'src', 'auth', 'cleanup-worker-script.js')
  return {
    name: 'latchkey-cleanup-worker-script',
    setup(build) {
      build.onResolve({ filter: /\/cleanup-worker-script\.js$/ }, (args) =>
        path.resolve(args.resolveDir, args.path) === original ? { path: replacement } : undefined,
      )
    },
  }
}

const packageTypes = new Map<string, string | undefined>()
function isCommonJs(file: string): boolean {
  if (/\.c[jt]s$/.test(file)) return true
  if (!file.endsWith('.js')) return false
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    if (!packageTypes.has(dir)) {
      let type: string | undefined
      try {
        type =
          (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { type?: string }).type ?? 'commonjs'
      } catch {
        type = undefined
      }
      packageTypes.set(dir, type)
    }
    const type = packageTypes.get(dir)
    if (type !== undefined) return type !== 'module'
    if (path.dirname(dir) === dir) return true
  }
}

/**
 * Gives each bundled module the location it has in the repository: `import.meta`
 * in ES modules, `__dirname` and `__filename` in CommonJS ones (as function
 * parameters, so 'use strict' stays the first statement). `runtime` is the
 * bundle's module that resolves them at run time; it exports
 * `bundledPath(relative)`, the file or folder at `relative` in the repository,
 * and `bundledImportMeta(relative)`, `import.meta` of the module at `relative`.
 */
export function repositoryPathsPlugin(runtime: string): esbuild.Plugin {
  const runtimeModule = JSON.stringify(runtime)
  return {
    name: 'latchkey-repository-paths',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]s$/, namespace: 'file' }, (args) => {
        if (args.path === runtime) return undefined
        const source = readFileSync(args.path, 'utf8')
        const loader = /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js'
        const commonJs = isCommonJs(args.path)
        if (!(commonJs ? /\b__(dirname|filename)\b/ : /\bimport\.meta\b/).test(source)) return undefined
        const file = JSON.stringify(repositoryPath(args.path))
        if (commonJs) {
          const dir = JSON.stringify(path.posix.dirname(repositoryPath(args.path)))
          const paths = `require(${runtimeModule})`
          return {
            contents: `(function (__dirname, __filename) {\n${source.replace(/^#!.*/, '')}\n}).call(this, ${paths}.bundledPath(${dir}), ${paths}.bundledPath(${file}))`,
            loader,
          }
        }
        return {
          contents: `${source.replace(/\bimport\.meta\b/g, `__latchkeyImportMeta(${file})`)}
import { bundledImportMeta as __latchkeyImportMeta } from ${runtimeModule}\n`,
          loader,
        }
      })
    },
  }
}
