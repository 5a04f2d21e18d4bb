// The bundles' stand-in for @fastify/autoload (the build swaps it in for
// src/app.ts): it registers the route folders that the build found in routes/
// (route-manifest.ts) from static imports, the way @fastify/autoload 6 registers
// what it finds at start-up: each folder's plugins under the folder's prefix, and
// a folder with hooks (its own autohooks and, cascaded, its parents') wrapped in
// one encapsulated context that holds those hooks.
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginCallback } from 'fastify'

/** A route or hook file as imported (`import * as module`). */
export interface RouteModule {
  default?: unknown
  autoload?: boolean
  autoPrefix?: string
  prefixOverride?: string
  autoConfig?: unknown
}

export interface RouteFolder {
  hooks: RouteModule[]
  /** `file` is relative to routes/; `prefix` is the folder's URL prefix (none at the top). */
  plugins: { file: string; prefix: string | undefined; module: RouteModule }[]
}

type Plugin = (FastifyPluginAsync | FastifyPluginCallback) & Partial<RouteModule>
type PluginOptions = Record<string, unknown> & { prefix?: string }

const SKIP_OVERRIDE = Symbol.for('skip-override')

/** The plugin function of a module, or `undefined` when autoload would skip it. */
function pluginOf(file: string, module: RouteModule): Plugin | undefined {
  const plugin = (module.default ?? module) as Plugin
  if (typeof plugin === 'object' && plugin !== null && 'method' in plugin) {
    throw new Error(`routes/${file}: exporting a route object is not supported in a bundle`)
  }
  if (typeof plugin !== 'function' || plugin.autoload === false || module.autoload === false) return undefined
  return plugin
}

/** The register options of one route file: its `autoConfig`, then its prefix. */
function optionsOf(file: string, module: RouteModule, plugin: Plugin, folderPrefix: string | undefined) {
  const config = plugin.autoConfig ?? module.autoConfig ?? {}
  if (typeof config !== 'object' || config === null) {
    throw new Error(`routes/${file}: a function autoConfig is not supported in a bundle`)
  }
  // As autoload does: the options are applied here, not again by Fastify.
  if (plugin.autoConfig !== undefined) plugin.autoConfig = undefined
  const options: PluginOptions = { ...config }
  if (options.prefix?.endsWith('/')) options.prefix = options.prefix.slice(0, -1)
  const prefix = plugin.autoPrefix ?? module.autoPrefix ?? folderPrefix
  const override = plugin.prefixOverride ?? module.prefixOverride
  if (override !== undefined) options.prefix = override
  else if (prefix) options.prefix = (options.prefix ?? '') + prefix.replace(/\/+/g, '/')
  return options
}

function registerFolder(fastify: FastifyInstance, folder: RouteFolder): void {
  const plugins = folder.plugins.flatMap(({ file, prefix, module }) => {
    const plugin = pluginOf(file, module)
    return plugin ? [{ plugin, options: optionsOf(file, module, plugin, prefix) }] : []
  })
  if (folder.hooks.length === 0) {
    for (const { plugin, options } of plugins) fastify.register(plugin, options)
    return
  }
  // The context holding the hooks takes the plugins' prefix when they all share one.
  const prefixes = plugins.map(({ options }) => options.prefix).filter((prefix) => prefix)
  const common = prefixes.length > 0 && prefixes.every((prefix) => prefix === prefixes[0]) ? prefixes[0] : undefined
  const hooks = folder.hooks.map((module) => {
    const hook = (module.default ?? module) as Plugin
    // Hooks apply to the folder's context itself, not to a child of it.
    if (typeof hook === 'function') Object.assign(hook, { [SKIP_OVERRIDE]: true })
    return hook
  })
  const withHooks = async (scope: FastifyInstance) => {
    for (const hook of hooks) scope.register(hook)
    for (const { plugin, options } of plugins) {
      const rest = common && options.prefix?.startsWith(common) ? options.prefix.slice(common.length) : options.prefix
      scope.register(plugin, { ...options, prefix: rest || undefined })
    }
  }
  fastify.register(withHooks, common ? { prefix: common } : {})
}

/** A plugin that registers `folders`, with @fastify/autoload's signature (its options are ignored). */
export function staticAutoload(folders: RouteFolder[]): FastifyPluginAsync<object> {
  const plugin = async (fastify: FastifyInstance) => {
    for (const folder of folders) registerFolder(fastify, folder)
  }
  // Like @fastify/autoload itself: the routes go into the caller's context.
  return Object.assign(plugin, { [SKIP_OVERRIDE]: true })
}
