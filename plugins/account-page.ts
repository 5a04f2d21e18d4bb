// The built-in account page at `/`: one HTML file, one script module and one
// stylesheet from `public/`, and two libraries from their packages, served as
// they are (no build step); off with
// PUBLIC_ACCOUNT_PAGE=false, when `/` falls through to the 404 handler.
//
// The HTML carries the few settings the script must know before it asks the API
// anything, in `<meta name="latchkey-settings">`: whether the cookies are Secure
// (over plain http from another host than localhost a browser drops them, and the
// page says what to do instead of failing at sign-in), whether sign-in links exist,
// and whether an address must be verified. None of them is a secret.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../src/config.js'

/** The only URLs served; anything else in `public/` stays private. */
const PAGE_PATHS = new Set(['/', '/index.html', '/account.js', '/account.css'])

/** `public/` sits beside `plugins/` in the repository (and for the bundles, scripts/bundle/esbuild.ts). */
const PUBLIC_DIR = path.resolve(import.meta.dirname, '..', 'public')

/**
 * Libraries the page loads, served from their packages as they are published:
 * @simplewebauthn/browser (the passkey ceremonies; its UMD bundle sets
 * `window.SimpleWebAuthnBrowser`) and uqr (draws the authenticator QR code as
 * SVG, in the page: the key never leaves it). Repository-relative, so the
 * single binary carries them (scripts/build-binary.ts).
 */
export const VENDOR_FILES: Readonly<Record<string, string>> = {
  '/vendor/simplewebauthn-browser.js': 'node_modules/@simplewebauthn/browser/dist/bundle/index.umd.min.js',
  '/vendor/uqr.js': 'node_modules/uqr/dist/index.mjs',
}

/** The placeholder in public/index.html that the settings replace. */
const SETTINGS_PLACEHOLDER = '<meta name="latchkey-settings" content="{}">'

/** What public/account.js reads from the page (see its `SETTINGS`). */
function pageSettings(config: Config): Record<string, boolean> {
  return {
    cookieSecure: config.cookieSecure,
    signInLinks: config.signInLinks,
    requireEmailVerification: config.requireEmailVerification,
  }
}

const escapeAttribute = (text: string): string =>
  text.replace(/[&"<>']/g, (c) => ({ '&': '&amp;', '"': '&quot;', '<': '&lt;', '>': '&gt;', "'": '&#39;' })[c] ?? c)

/** index.html with this configuration's settings in place of the placeholder. */
function renderAccountPage(html: string, config: Config): string {
  if (!html.includes(SETTINGS_PLACEHOLDER)) throw new Error(`public/index.html lacks ${SETTINGS_PLACEHOLDER}`)
  const content = escapeAttribute(JSON.stringify(pageSettings(config)))
  return html.replace(SETTINGS_PLACEHOLDER, `<meta name="latchkey-settings" content="${content}">`)
}

async function accountPage(fastify: FastifyInstance): Promise<void> {
  if (!fastify.config.publicAccountPage) return
  const indexFile = path.join(PUBLIC_DIR, 'index.html')
  if (!existsSync(indexFile)) {
    fastify.log.warn('account page: public/index.html not found; GET / is not served')
    return
  }
  // Rendered once: the settings depend on the configuration only.
  const html = Buffer.from(renderAccountPage(readFileSync(indexFile, 'utf8'), fastify.config))
  const etag = `"${createHash('sha256').update(html).digest('base64url').slice(0, 27)}"`
  for (const url of ['/', '/index.html']) {
    fastify.get(url, { schema: { hide: true } }, async (request, reply) => {
      // Revalidated on every visit, so a new release (or setting) is picked up at once.
      reply.header('cache-control', 'no-cache').header('etag', etag)
      if (request.headers['if-none-match'] === etag) return reply.code(304).send()
      return reply.type('text/html; charset=utf-8').send(html)
    })
  }

  for (const [url, relative] of Object.entries(VENDOR_FILES)) {
    const file = path.resolve(PUBLIC_DIR, '..', ...relative.split('/'))
    if (!existsSync(file)) {
      fastify.log.warn(`account page: ${relative} not found; ${url} is not served`)
      continue
    }
    const body = readFileSync(file)
    const tag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
    fastify.get(url, { schema: { hide: true } }, async (request, reply) => {
      reply.header('cache-control', 'public, max-age=300, must-revalidate').header('etag', tag)
      if (request.headers['if-none-match'] === tag) return reply.code(304).send()
      return reply.type('text/javascript; charset=utf-8').send(body)
    })
  }

  await fastify.register(fastifyStatic, {
    root: PUBLIC_DIR,
    // One route per file present at start-up, no catch-all, no directory listing;
    // the HTML is the routes above.
    wildcard: false,
    index: false,
    globIgnore: ['index.html'],
    allowedPath: (pathname) => PAGE_PATHS.has(pathname),
    decorateReply: false,
    dotfiles: 'deny',
    cacheControl: false,
    // The unversioned assets may be reused briefly, then revalidated (ETag).
    setHeaders: (reply) => {
      reply.header('cache-control', 'public, max-age=300, must-revalidate')
    },
  })
}

export default fp(accountPage, { name: 'account-page' })
