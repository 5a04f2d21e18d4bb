// Cleanup of ended sessions and expired refresh tokens, by call and by schedule.
import t from 'tap'
import { cleanupSessions } from '../src/auth/cleanup.js'
import { endedRowQueries } from '../src/auth/sessions.js'
import { buildTestApp, cookieHeader, login, signup, sleep } from './helper.js'

t.test('cleanup deletes expired and revoked sessions, keeps active ones', async (t) => {
  const { app } = await buildTestApp(t, { JWT_REFRESH_TOKEN_DURATION: '2s' })
  const store = app.store
  const keeper = await signup(app)
  const revoked = await login(app, keeper.email)
  await app.inject({ method: 'POST', url: '/auth/logout', headers: revoked.bearer })
  const expiring = await login(app, keeper.email)
  // Rotation leaves a used token behind in the kept session.
  await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: cookieHeader({ refresh_token: keeper.cookies.refresh_token }) },
  })
  await sleep(2100)
  const fresh = await login(app, keeper.email)

  const deleted = await cleanupSessions(store, Date.now(), 2)
  t.ok(deleted >= 3, `deleted ${deleted} rows in batches of 2`)
  const sessions = store.all(store.db.selectFrom('sessions').select('id'))
  t.equal(sessions.length, 1, 'only the fresh session is left')
  t.equal((await app.inject({ url: '/users/me', headers: fresh.bearer })).statusCode, 200)
  for (const gone of [revoked, expiring, keeper]) {
    t.equal((await app.inject({ url: '/users/me', headers: gone.bearer })).statusCode, 401)
  }
  const tokens = store.all(store.db.selectFrom('refresh_tokens').selectAll())
  t.ok(
    tokens.every((token) => token.expires_at > Date.now()),
    'no expired refresh token is left',
  )
  t.equal(await cleanupSessions(store, Date.now()), 0, 'a second run finds nothing')
})

t.test('the schedule (CLEANUP_CRON) runs the cleanup', async (t) => {
  const { app } = await buildTestApp(t, { CLEANUP_CRON: '* * * * * *' })
  const account = await signup(app)
  await app.inject({ method: 'POST', url: '/auth/logout', headers: account.bearer })
  await sleep(2200)
  const sessions = app.store.all(app.store.db.selectFrom('sessions').select('id'))
  t.equal(sessions.length, 0, 'the revoked session was cleaned up by the scheduler')
})

t.test('each cleanup batch is an index range scan, never a table scan', async (t) => {
  const { app } = await buildTestApp(t)
  const { store } = app
  for (const [name, query] of Object.entries(endedRowQueries(store, Date.now(), 250))) {
    const compiled = query.compile()
    const plan = store
      .all<{ detail: string }>({ ...compiled, sql: `explain query plan ${compiled.sql}` })
      .map((row) => row.detail)
      .join(' | ')
    t.match(plan, /SEARCH .* USING (COVERING )?INDEX/, `${name}: ${plan}`)
    t.notMatch(plan, /\bSCAN\b/, `${name}: no scan`)
  }
})
