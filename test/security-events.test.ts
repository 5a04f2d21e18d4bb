// The security event log: each flow writes exactly its event (with session, IP
// and user agent), failed logins for unknown emails write nothing, each event is
// one JSON log line without secrets, GET /users/me/security-events pages them
// newest first and never shows another user's, and the session cleanup deletes
// events past SECURITY_EVENT_RETENTION only.
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import t from 'tap'
import { cleanupSessions } from '../src/auth/cleanup.js'
import { expiredSecurityEventsQuery, securityEventsQuery } from '../src/auth/security-events.js'
import { planNodes, postgresPlan, sqlitePlan } from './data-helper.js'
import {
  type Account,
  buildLoggedTestApp,
  buildTestApp,
  confirmPassword,
  cookieHeader,
  cookiesOf,
  login,
  onPostgres,
  PASSWORD,
  signup,
  uniqueEmail,
} from './helper.js'

const DAY = 24 * 60 * 60 * 1000
const UA = { 'user-agent': 'SecurityEventsTest/1.0' }

interface Row {
  id: string
  type: string
  session_id: string | null
  ip: string | null
  user_agent: string | null
}

const eventsOf = (app: FastifyInstance, userId: string): Promise<Row[]> =>
  app.db
    .selectFrom('security_events')
    .select(['id', 'type', 'session_id', 'ip', 'user_agent'])
    .where('user_id', '=', userId)
    .execute()

/** Runs `action` and answers the events it added for `userId` (by id, so no clock tick is needed). */
async function added(app: FastifyInstance, userId: string, action: () => Promise<unknown>): Promise<Row[]> {
  const before = new Set((await eventsOf(app, userId)).map((row) => row.id))
  await action()
  return (await eventsOf(app, userId)).filter((row) => !before.has(row.id))
}

const sessionIdOf = (account: Account): string =>
  JSON.parse(Buffer.from(account.accessToken.split('.')[1] ?? '', 'base64url').toString('utf8')).sid

t.test('each flow writes exactly its event', async (t) => {
  const { app } = await buildTestApp(t)
  const email = uniqueEmail('events')
  const total = async () => (await app.db.selectFrom('security_events').select('id').execute()).length

  // Sign-up: the new account's first event, with its session.
  const allBefore = await total()
  const account = await signup(app, { email, headers: UA })
  const userId = account.userId
  const [signupEvent, ...more] = await eventsOf(app, userId)
  t.same(more, [])
  t.match(signupEvent, {
    type: 'signup',
    session_id: sessionIdOf(account),
    ip: '127.0.0.1',
    user_agent: UA['user-agent'],
  })
  t.equal(await total(), allBefore + 1)

  const second = await login(app, email, PASSWORD, UA)
  const third = await login(app, email)
  const scenarios: [string, () => Promise<unknown>, Partial<Row>[]][] = [
    ['login', () => login(app, email, PASSWORD, UA), [{ type: 'login_succeeded', user_agent: UA['user-agent'] }]],
    [
      'wrong password',
      () => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: 'wrong password' } }),
      [{ type: 'login_failed', session_id: null, ip: '127.0.0.1' }],
    ],
    [
      'wrong password on password confirmation',
      () =>
        app.inject({
          method: 'POST',
          url: '/auth/password-confirmation',
          headers: second.bearer,
          payload: { password: 'wrong password' },
        }),
      [{ type: 'login_failed', session_id: sessionIdOf(second) }],
    ],
    ['a refresh that rotates', () => refresh(app, second.cookies.refresh_token), []],
    ['a read', () => app.inject({ url: '/users/me', headers: second.bearer }), []],
    [
      'revoking one session',
      () => app.inject({ method: 'DELETE', url: `/auth/sessions/${sessionIdOf(third)}`, headers: second.bearer }),
      [{ type: 'session_revoked', session_id: sessionIdOf(third) }],
    ],
    [
      'password change',
      () =>
        app.inject({
          method: 'PUT',
          url: '/users/me/password',
          headers: { ...second.bearer, ...UA },
          payload: { currentPassword: PASSWORD, newPassword: 'another fine passphrase 2' },
        }),
      [{ type: 'password_changed', session_id: sessionIdOf(second), user_agent: UA['user-agent'] }],
    ],
    [
      'logout',
      () => app.inject({ method: 'POST', url: '/auth/logout', headers: second.bearer }),
      [{ type: 'logout', session_id: sessionIdOf(second) }],
    ],
  ]
  for (const [name, action, expected] of scenarios) {
    const rows = await added(app, userId, action)
    t.match(rows, expected, name)
    t.equal(rows.length, expected.length, `${name}: exactly its event`)
  }

  const nobody = await added(app, userId, async () => {
    const before = await total()
    const response = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email: uniqueEmail('nobody'), password: PASSWORD },
    })
    t.equal(response.statusCode, 401)
    t.equal(await total(), before, 'a failed login for an unknown email stores nothing')
  })
  t.same(nobody, [])
})

const refresh = (app: FastifyInstance, refreshCookie: string | undefined) =>
  app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: cookieHeader({ refresh_token: refreshCookie }) },
  })

t.test('logout of the others and of all, refresh reuse', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const account = await signup(app)
  const others = [await login(app, account.email), await login(app, account.email)]
  const rows = await added(app, account.userId, () =>
    app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer, payload: { scope: 'others' } }),
  )
  t.same(rows.map((row) => row.type).sort(), ['session_revoked', 'session_revoked'])
  t.same(rows.map((row) => row.session_id).sort(), others.map(sessionIdOf).sort(), 'one per ended session')

  const phone = await login(app, account.email)
  const all = await added(app, account.userId, () =>
    app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer, payload: { scope: 'all' } }),
  )
  t.same(
    all.map((row) => [row.type, row.session_id]).sort(),
    [
      ['logout', sessionIdOf(account)],
      ['session_revoked', sessionIdOf(phone)],
    ].sort(),
  )

  const tab = await login(app, account.email)
  const rotated = await refresh(app, tab.cookies.refresh_token)
  t.equal(rotated.statusCode, 200)
  clock.advance(60_000)
  const reuse = await added(app, account.userId, () => refresh(app, tab.cookies.refresh_token))
  t.match(reuse, [{ type: 'refresh_reuse_detected', session_id: sessionIdOf(tab) }])
  t.equal(reuse.length, 1)
})

t.test('account deletion keeps one account_deleted event with the user id alone', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app, { headers: UA })
  await login(app, account.email, PASSWORD, UA)
  const token = await confirmPassword(app, account)
  const response = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: { ...account.bearer, 'x-password-confirmation': token },
  })
  t.equal(response.statusCode, 204)
  const rows = await app.db.selectFrom('security_events').selectAll().where('user_id', '=', account.userId).execute()
  t.equal(rows.length, 1, 'the earlier events (with IPs and user agents) are gone')
  t.match(rows[0], { type: 'account_deleted', user_id: account.userId, session_id: null, ip: null, user_agent: null })
  t.notMatch(JSON.stringify(rows), account.email)
})

t.test('GET /users/me/security-events: newest first, paginated, only your own', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const alice = await signup(app, { headers: UA })
  const bob = await signup(app)
  for (let i = 0; i < 4; i++) {
    clock.advance(1000)
    await login(app, alice.email)
  }
  clock.advance(1000)
  await app.inject({ method: 'POST', url: '/auth/login', payload: { email: alice.email, password: 'wrong password' } })

  const page = (account: Account, query = '') =>
    app.inject({ url: `/users/me/security-events${query}`, headers: account.bearer })
  const first = await page(alice, '?limit=2')
  t.equal(first.statusCode, 200)
  const body = first.json()
  t.equal(body.items.length, 2)
  t.same(Object.keys(body.items[0]).sort(), ['createdAt', 'device', 'id', 'ip', 'sessionId', 'type', 'userAgent'])
  t.match(body.items[0], { type: 'login_failed', sessionId: null, ip: '127.0.0.1' })
  t.equal(body.items[1].type, 'login_succeeded')
  t.ok(body.nextCursor)

  const seen = [...body.items]
  let cursor: string | null = body.nextCursor
  while (cursor) {
    const next = await page(alice, `?limit=2&cursor=${cursor}`)
    t.equal(next.statusCode, 200)
    seen.push(...next.json().items)
    cursor = next.json().nextCursor
  }
  t.same(
    seen.map((event) => event.type),
    ['login_failed', 'login_succeeded', 'login_succeeded', 'login_succeeded', 'login_succeeded', 'signup'],
    'every event once, newest first',
  )
  t.match(seen.at(-1), {
    type: 'signup',
    userAgent: UA['user-agent'],
    device: 'SecurityEventsTest',
    sessionId: sessionIdOf(alice),
  })
  const createdAt = seen.map((event) => Date.parse(event.createdAt))
  t.same(
    createdAt,
    [...createdAt].sort((a, b) => b - a),
    'ordered by time',
  )

  const bobs = (await page(bob)).json()
  t.same(
    bobs.items.map((event: { type: string }) => event.type),
    ['signup'],
    "another user's events never show",
  )
  t.notOk(
    bobs.items.some((event: { id: string }) => seen.some((mine) => mine.id === event.id)),
    'no event of alice in bob’s page',
  )
  const stolen = await page(bob, `?cursor=${body.nextCursor}`)
  t.equal(stolen.statusCode, 400, "a cursor of alice's is refused for bob")
  t.equal(stolen.json().code, 'INVALID_CURSOR')
  t.equal((await app.inject({ url: '/users/me/security-events' })).statusCode, 401, 'needs an access token')
  t.equal((await page(alice, '?limit=0')).statusCode, 400)
})

t.test('retention: the session cleanup deletes old events only', async (t) => {
  const { app, clock } = await buildTestApp(t, { SECURITY_EVENT_RETENTION: '30d' })
  const account = await signup(app)
  const [old] = await eventsOf(app, account.userId)
  clock.advance(29 * DAY)
  const recent = await login(app, account.email)
  t.equal(recent.userId, account.userId)
  await cleanupSessions(app.db, clock.now())
  t.same(
    (await eventsOf(app, account.userId)).map((row) => row.type).sort(),
    ['login_succeeded', 'signup'],
    'nothing is past its 30 days yet',
  )
  clock.advance(2 * DAY)
  await cleanupSessions(app.db, clock.now())
  const left = await eventsOf(app, account.userId)
  t.same(
    left.map((row) => row.type),
    ['login_succeeded'],
    'the sign-up, 31 days old, is gone; the login, 2 days old, stays',
  )
  t.notOk(
    left.some((row) => row.id === old?.id),
    'the old row is deleted',
  )
})

t.test('each event is one JSON log line with event, userId, sessionId and ip, and no secret', async (t) => {
  const { app, lines } = await buildLoggedTestApp(t)
  const response = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email: uniqueEmail('logged'), password: PASSWORD },
  })
  t.equal(response.statusCode, 201)
  const account = response.json()
  const refreshCookie = cookiesOf(response).refresh_token
  await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.user.email, password: 'nope nope' },
  })
  const events = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'security event')
  t.match(events, [
    { event: 'signup', userId: account.user.id, ip: '127.0.0.1', sessionId: String },
    { event: 'login_failed', userId: account.user.id, ip: '127.0.0.1', sessionId: null },
  ])
  t.equal(events.length, 2)
  const all = lines.join('\n')
  for (const secret of [PASSWORD, 'nope nope', account.accessToken, refreshCookie?.split('.')[0] ?? 'x']) {
    t.notOk(all.includes(secret), 'no password or token in any log line')
  }
})

t.test('the page and cleanup queries read their indexes', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const userId = 'some-user'
  const page = securityEventsQuery(app.db, userId)
    .limit(sql.lit(21))
    .where(sql<boolean>`(${sql.ref('created_at')}, ${sql.ref('id')}) < (${clock.now()}, ${'x'})`)
    .compile()
  const expired = expiredSecurityEventsQuery(app.db, clock.now(), 100).compile()
  if (onPostgres) {
    const pageNodes = planNodes(await postgresPlan(app, page))
    t.ok(
      pageNodes.some((node) => node['Index Name'] === 'security_events_user_page'),
      'page: the (user_id, created_at, id) index',
    )
    t.notOk(
      pageNodes.some((node) => node['Node Type'] === 'Sort'),
      'page: in index order, no sort',
    )
    t.ok(
      planNodes(await postgresPlan(app, expired)).some((node) => node['Index Name'] === 'security_events_expires_at'),
      'cleanup: the expires_at index',
    )
    return
  }
  const pagePlan = (await sqlitePlan(app, page)).join('\n')
  t.match(pagePlan, /USING (COVERING )?INDEX security_events_user_page/, pagePlan)
  t.notMatch(pagePlan, /TEMP B-TREE/, 'no sort')
  t.match((await sqlitePlan(app, expired)).join('\n'), /USING (COVERING )?INDEX security_events_expires_at/)
})

t.test('a disabled account is refused by the session check itself, by refresh and by login', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200)
  // Disabled in the database, sessions left as they are (as by a disable racing a sign-in).
  await app.db.updateTable('users').set({ disabled_at: Date.now() }).where('id', '=', account.userId).execute()
  const me = await app.inject({ url: '/users/me', headers: account.bearer })
  t.equal(me.statusCode, 401, 'the live session of a disabled account is refused on its next request')
  t.equal(me.json().code, 'SESSION_REVOKED')
  const refreshed = await refresh(app, account.cookies.refresh_token)
  t.equal(refreshed.statusCode, 403)
  t.equal(refreshed.json().code, 'ACCOUNT_DISABLED')
  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: PASSWORD },
  })
  t.equal(login.statusCode, 403)
  t.equal(login.json().code, 'ACCOUNT_DISABLED')
  t.same(
    (await eventsOf(app, account.userId)).map((row) => row.type),
    ['signup'],
    'a refused sign-in is no login_succeeded',
  )
})
