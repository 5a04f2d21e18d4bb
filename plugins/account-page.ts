// The built-in account page at `/`: one HTML file, one script module and one
// stylesheet from `public/`, served as they are (no build step); off with
// PUBLIC_ACCOUNT_PAGE=false, when `/` falls through to the 404 handler.
import { existsSync } from 'node:fs'
import path from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** The only URLs served; anything else in `public/` stays private. */
const PAGE_PATHS = new Set(['/', '/index.html', '/account.js', '/account.css'])

/** `public/` sits beside `plugins/` in the repository (and for the bundles, scripts/bundle/esbuild.ts). */
const PUBLIC_DIR = path.resolve(import.meta.dirname, '..', 'public')

async function accountPage(fastify: FastifyInstance): Promise<void> {
  if (!fastify.config.publicAccountPage) return
  if (!existsSync(path.join(PUBLIC_DIR, 'index.html'))) {
    fastify.log.warn('account page: public/index.html not found; GET / is not served')
    return
  }
  await fastify.register(fastifyStatic, {
    root: PUBLIC_DIR,
    // One route per file present at start-up, no catch-all, no directory listing.
    wildcard: false,
    allowedPath: (pathname) => PAGE_PATHS.has(pathname),
    decorateReply: false,
    dotfiles: 'deny',
    cacheControl: false,
    // The HTML is revalidated on every visit, so a new release is picked up at
    // once; the unversioned assets may be reused briefly, then revalidated (ETag).
    setHeaders: (reply, file) => {
      reply.header('cache-control', file.endsWith('.html') ? 'no-cache' : 'public, max-age=300, must-revalidate')
    },
  })
}

export default fp(accountPage, { name: 'account-page' })
