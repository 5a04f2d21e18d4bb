// Peer: the hand-rolled stack. Express 5, cookie-parser (signed cookies),
// jsonwebtoken (HS256 with a KeyObject secret), better-sqlite3 for users and
// sessions, bcryptjs (cost 10) for passwords. A request to `GET /users/me`
// verifies the JWT from the signed `access_token` cookie or the
// `Authorization: Bearer` header, checks its session row (not revoked, not
// expired) and reads the user: two prepared statements, prepared once.
// Sign-up and login create a session and answer a 15-minute access token, in
// the body and as the signed cookie. Express and the other peers' packages come
// from bench/peers/node_modules; better-sqlite3 from the project's own.
import { createSecretKey, randomBytes, randomUUID } from 'node:crypto'
import path from 'node:path'
import bcrypt from 'bcryptjs'
import Database from 'better-sqlite3'
import cookieParser from 'cookie-parser'
import express from 'express'
import jwt from 'jsonwebtoken'

const BCRYPT_COST = 10
const ACCESS_TOKEN_SECONDS = 15 * 60
const SESSION_MS = 30 * 24 * 3600 * 1000

const db = new Database(path.join(process.env.DATA_DIR, 'express-jwt.db'))
// WAL and synchronous=FULL, as latchkey's database.
db.pragma('journal_mode = WAL')
db.pragma('synchronous = FULL')
db.exec(`
  create table if not exists users (
    id text primary key, email text not null unique, name text not null,
    password_hash text not null, created_at integer not null);
  create table if not exists sessions (
    id text primary key, user_id text not null references users(id) on delete cascade,
    created_at integer not null, expires_at integer not null, revoked_at integer);
  create index if not exists sessions_user on sessions(user_id);
`)
const insertUser = db.prepare(
  'insert into users (id, email, name, password_hash, created_at) values (?, ?, ?, ?, ?) on conflict do nothing',
)
const userByEmail = db.prepare('select id, email, name, password_hash from users where email = ?')
const userById = db.prepare('select id, email, name from users where id = ?')
const insertSession = db.prepare('insert into sessions (id, user_id, created_at, expires_at) values (?, ?, ?, ?)')
const liveSession = db.prepare('select 1 from sessions where id = ? and revoked_at is null and expires_at > ?')

const jwtKey = createSecretKey(randomBytes(32))
const cookieSecret = randomBytes(32).toString('base64url')

const app = express()
app.disable('x-powered-by')
app.use(express.json({ limit: '10kb' }))
app.use(cookieParser(cookieSecret))

/** `{ email, password }` (and an optional name) of a bounded size, or undefined. */
function credentials(body) {
  const { email, password, name } = body ?? {}
  if (typeof email !== 'string' || email.length < 3 || email.length > 254) return undefined
  if (typeof password !== 'string' || password.length < 8 || password.length > 256) return undefined
  if (name !== undefined && (typeof name !== 'string' || name.length > 100)) return undefined
  return { email: email.trim().toLowerCase(), password, name: name ?? '' }
}

/** A new session for `user`: its signed cookie and the JSON answer. */
function startSession(res, user, status) {
  const now = Date.now()
  const sessionId = randomUUID()
  insertSession.run(sessionId, user.id, now, now + SESSION_MS)
  const accessToken = jwt.sign({ sid: sessionId }, jwtKey, {
    algorithm: 'HS256',
    subject: user.id,
    expiresIn: ACCESS_TOKEN_SECONDS,
  })
  res.cookie('access_token', accessToken, {
    signed: true,
    httpOnly: true,
    sameSite: 'lax',
    maxAge: ACCESS_TOKEN_SECONDS * 1000,
  })
  res.status(status).json({ user: { id: user.id, email: user.email, name: user.name }, accessToken })
}

app.get('/health', (_req, res) => {
  res.json({ status: 'ok' })
})

app.post('/auth/signup', async (req, res) => {
  const input = credentials(req.body)
  if (!input) return res.status(400).json({ error: 'invalid input' })
  const user = { id: randomUUID(), email: input.email, name: input.name }
  const hash = await bcrypt.hash(input.password, BCRYPT_COST)
  if (insertUser.run(user.id, user.email, user.name, hash, Date.now()).changes === 0) {
    return res.status(409).json({ error: 'email taken' })
  }
  startSession(res, user, 201)
})

app.post('/auth/login', async (req, res) => {
  const input = credentials(req.body)
  if (!input) return res.status(400).json({ error: 'invalid input' })
  const user = userByEmail.get(input.email)
  if (!user || !(await bcrypt.compare(input.password, user.password_hash))) {
    return res.status(401).json({ error: 'invalid credentials' })
  }
  startSession(res, user, 200)
})

app.get('/users/me', (req, res) => {
  const header = req.get('authorization')
  const token = header?.startsWith('Bearer ') ? header.slice(7) : req.signedCookies.access_token
  let claims
  try {
    claims = token && jwt.verify(token, jwtKey, { algorithms: ['HS256'] })
  } catch {
    claims = undefined
  }
  if (!claims || !liveSession.get(claims.sid, Date.now())) return res.status(401).json({ error: 'unauthorized' })
  const user = userById.get(claims.sub)
  if (!user) return res.status(401).json({ error: 'unauthorized' })
  res.json({ user })
})

const server = app.listen(Number(process.env.PORT), '127.0.0.1')
process.once('SIGTERM', () => server.close(() => process.exit(0)))
