// Build time: walks routes/ with @fastify/autoload 6's rules and the options that
// src/app.ts gives it, and writes a module that imports every route and hook file
// statically, for static-autoload.ts to register in a bundle (dist/app.cjs, the
// single binary), which reads no routes/ folder at start. Rules, as in autoload's lib/find-plugins.js: a
// folder's name is its URL prefix; a folder with an index file loads only that
// file (its subfolders still load); `autohooks` files hold hooks for their folder
// and, cascaded, its subfolders; entries are visited in directory order.
import { type Dirent, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { AutoloadPluginOptions } from '@fastify/autoload'

// @fastify/autoload's default patterns (its index.js).
const SCRIPT_PATTERN = /(?:(?:^.?|\.[^d]|[^.]d|[^.][^d])\.ts|\.js|\.cjs|\.mjs|\.cts|\.mts)$/iu
const INDEX_PATTERN = /^index(?:\.ts|\.js|\.cjs|\.mjs|\.cts|\.mts)$/iu
const AUTOHOOKS_PATTERN = /^[_.]?auto_?hooks(?:\.ts|\.js|\.cjs|\.mjs|\.cts|\.mts)$/iu

/** The options this walker implements; any other one fails the build rather than be ignored. */
const SUPPORTED = new Set(['dir', 'autoHooks', 'cascadeHooks', 'ignorePattern', 'ignoreFilter', 'matchFilter'])

export interface FoundFolder {
  /** Absolute paths. */
  hooks: string[]
  plugins: { file: string; prefix: string | undefined }[]
}

type Filter = NonNullable<AutoloadPluginOptions['ignoreFilter']>

function passes(filter: Filter, file: string): boolean {
  if (typeof filter === 'string') return file.includes(filter)
  if (filter instanceof RegExp) return filter.test(file)
  return filter(file)
}

/** The folders @fastify/autoload would register with `options`, in its order. */
export function findRouteFolders(options: AutoloadPluginOptions): FoundFolder[] {
  const unsupported = Object.keys(options).filter((key) => !SUPPORTED.has(key))
  if (unsupported.length > 0) throw new Error(`route-manifest: autoload option(s) not implemented: ${unsupported}`)
  const root = options.dir
  const folders = new Map<string, FoundFolder>()

  const addPlugin = (dir: string, file: string, prefix: string | undefined) => {
    const relative = `/${path.relative(root, file).split(path.sep).join('/')}`
    if (options.matchFilter && !passes(options.matchFilter, relative)) return
    if (options.ignoreFilter && passes(options.ignoreFilter, relative)) return
    folders.get(dir)?.plugins.push({ file, prefix })
  }

  const walk = (dir: string, prefix: string | undefined, inherited: string[]) => {
    const entries: Dirent[] = readdirSync(dir, { withFileTypes: true })
    const hooks = options.autoHooks ? [...inherited] : []
    const autohooks = options.autoHooks ? entries.find((entry) => AUTOHOOKS_PATTERN.test(entry.name)) : undefined
    if (autohooks) hooks.push(path.join(dir, autohooks.name))
    folders.set(dir, { hooks, plugins: [] })

    const index = entries.find((entry) => INDEX_PATTERN.test(entry.name))
    if (index) {
      addPlugin(dir, path.join(dir, index.name), prefix)
      if (entries.every((entry) => !entry.isDirectory())) return
    }
    for (const entry of entries) {
      const file = path.join(dir, entry.name)
      const relative = path.relative(root, file).split(path.sep).join('/')
      if (options.ignorePattern && new RegExp(options.ignorePattern).test(relative)) continue
      if (entry.isDirectory()) {
        walk(
          file,
          `${prefix ? `${prefix}/` : '/'}${entry.name}`,
          options.autoHooks && options.cascadeHooks ? hooks : [],
        )
      } else if (!index && entry.isFile() && SCRIPT_PATTERN.test(entry.name) && !AUTOHOOKS_PATTERN.test(entry.name)) {
        addPlugin(dir, file, prefix)
      }
    }
  }

  walk(root, undefined, [])
  return [...folders.values()]
}

/** Writes the module exporting `routeFolders` (a `RouteFolder[]`) to `outFile`; returns the route files. */
export function writeRouteManifest(options: AutoloadPluginOptions, outFile: string): string[] {
  const folders = findRouteFolders(options)
  const names = new Map<string, string>()
  const lines: string[] = []
  const specifier = (file: string) => {
    const relative = path.relative(path.dirname(outFile), file).split(path.sep).join('/')
    return relative.startsWith('.') ? relative : `./${relative}`
  }
  const nameOf = (file: string) => {
    let name = names.get(file)
    if (!name) {
      name = `module${names.size}`
      names.set(file, name)
      lines.push(`import * as ${name} from ${JSON.stringify(specifier(file))}`)
    }
    return name
  }
  const body = folders.map((folder) => {
    const hooks = folder.hooks.map(nameOf).join(', ')
    const plugins = folder.plugins.map(({ file, prefix }) => {
      const relative = path.relative(options.dir, file).split(path.sep).join('/')
      return `{ file: ${JSON.stringify(relative)}, prefix: ${JSON.stringify(prefix)}, module: ${nameOf(file)} }`
    })
    return `  { hooks: [${hooks}], plugins: [${plugins.join(', ')}] },`
  })
  const typeImport = specifier(path.join(import.meta.dirname, 'static-autoload.ts'))
  const source = [
    '// Generated by scripts/bundle/ from routes/; do not edit.',
    `import type { RouteFolder } from ${JSON.stringify(typeImport)}`,
    ...lines,
    '',
    'export const routeFolders: RouteFolder[] = [',
    ...body,
    ']',
    '',
  ].join('\n')
  writeFileSync(outFile, source)
  return [...names.keys()]
}
