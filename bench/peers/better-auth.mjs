// Peer: Better Auth, as its documentation sets it up, behind Fastify.
// Email and password sign-in on better-sqlite3; default session settings (no
// cookie cache: every getSession reads the session and its user from the
// database); the bearer plugin, so `Authorization: Bearer <session token>` works
// as the cookie does. `GET /users/me` answers from `auth.api.getSession`; the
// rest of `/api/auth/*` goes to Better Auth's own handler (sign-up, sign-in).
//
// Its rate limiter is off: latchkey runs in the bench with limits high enough
// never to refuse (it still counts every request); Better Auth's would refuse
// the login scenario after 3 sign-ins per 10 s. Fastify and better-sqlite3 come
// from the project's own node_modules (the versions latchkey runs on).
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { betterAuth } from 'better-auth'
import { getMigrations } from 'better-auth/db/migration'
import { fromNodeHeaders } from 'better-auth/node'
import { bearer } from 'better-auth/plugins/bearer'
import Database from 'better-sqlite3'
import Fastify from 'fastify'

const port = Number(process.env.PORT)
const db = new Database(path.join(process.env.DATA_DIR, 'better-auth.db'))
// WAL, as latchkey's database; SQLite's default synchronous=FULL stays (latchkey's too).
db.pragma('journal_mode = WAL')

const auth = betterAuth({
  database: db,
  secret: randomBytes(32).toString('base64url'),
  baseURL: `http://127.0.0.1:${port}`,
  emailAndPassword: { enabled: true },
  plugins: [bearer()],
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
})
const { runMigrations } = await getMigrations(auth.options)
await runMigrations()

const app = Fastify()
app.get('/health', async () => ({ status: 'ok' }))

app.get('/users/me', async (request, reply) => {
  const session = await auth.api.getSession({ headers: fromNodeHeaders(request.headers) })
  if (!session) return reply.code(401).send({ error: 'unauthorized' })
  const { id, email, name } = session.user
  return { user: { id, email, name } }
})

// Better Auth's endpoints, through its Fetch-API handler.
app.route({
  method: ['GET', 'POST'],
  url: '/api/auth/*',
  async handler(request, reply) {
    const url = new URL(request.url, `http://${request.headers.host}`)
    const response = await auth.handler(
      new Request(url, {
        method: request.method,
        headers: fromNodeHeaders(request.headers),
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
      }),
    )
    reply.status(response.status)
    for (const [name, value] of response.headers) {
      if (name !== 'set-cookie') reply.header(name, value)
    }
    const cookies = response.headers.getSetCookie()
    if (cookies.length > 0) reply.header('set-cookie', cookies)
    return reply.send(response.body ? await response.text() : null)
  },
})

process.once('SIGTERM', () => app.close().then(() => process.exit(0)))
await app.listen({ port, host: '127.0.0.1' })
