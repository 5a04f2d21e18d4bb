// The built-in account page at `/` (static files from `public/`); off with
// PUBLIC_ACCOUNT_PAGE=false. Placeholder until the page lands.
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

async function accountPage(fastify: FastifyInstance): Promise<void> {
  if (!fastify.config.publicAccountPage) return
}

export default fp(accountPage, { name: 'account-page' })
