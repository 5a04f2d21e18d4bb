// End to end: `latchkey users ...` (the built CLI) beside a running server
// process on the same database (SQLite file, or PostgreSQL with
// TEST_DATABASE=postgres). What the command does, the server enforces on its
// very next request: revoked sessions and a disabled account's tokens are
// refused, a disabled account cannot log in or refresh (403 ACCOUNT_DISABLED).
// `--json` answers parse; the tables have their headers.
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { PASSWORD, TEST_ENV, tempDir, testDatabaseEnv, uniqueEmail } from '../helper.js'
import { base32Decode, totp } from '../totp.js'
import { CLI, freePort, json, setCookieValue, spawnServer, stopServer, untilHealthy } from './server-process.js'

interface SignedIn {
  accessToken: string
  refreshCookie: string
}

t.test('users list, show, revoke-sessions, disable, enable and delete beside a running server', async (t) => {
  const dir = tempDir(t)
  const env = await testDatabaseEnv(t)
  const users = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, 'users', ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ...TEST_ENV, DATA_DIR: dir, ...env },
    })
  const usersJson = (...args: string[]) => {
    const result = users(...args, '--json')
    t.equal(result.status, 0, `users ${args.join(' ')} --json: ${result.stderr}`)
    return JSON.parse(result.stdout)
  }
  const server = spawnServer('admin', { dataDir: dir, port: await freePort(), env })
  t.teardown(() => stopServer(server))
  await untilHealthy(server)

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.base}${path}`, json(body, { 'user-agent': 'AdminCliTest/1.0', ...headers }))
  const signIn = async (path: string, email: string): Promise<SignedIn> => {
    const response = await post(path, { email, password: PASSWORD })
    t.equal(response.status, path === '/auth/signup' ? 201 : 200, `${path} ${email}`)
    const refreshCookie = setCookieValue(response, 'refresh_token') ?? ''
    return { accessToken: ((await response.json()) as { accessToken: string }).accessToken, refreshCookie }
  }
  const me = async (session: SignedIn) =>
    fetch(`${server.base}/users/me`, { headers: { authorization: `Bearer ${session.accessToken}` } })
  const refresh = async (session: SignedIn) =>
    fetch(`${server.base}/auth/refresh`, {
      method: 'POST',
      headers: { cookie: `refresh_token=${session.refreshCookie}` },
    })

  const alice = uniqueEmail('alice')
  const bob = uniqueEmail('bob')
  const aliceFirst = await signIn('/auth/signup', alice)
  const aliceSecond = await signIn('/auth/login', alice)
  const bobSession = await signIn('/auth/signup', bob)

  // list: a table by default, JSON with --json; --email filters.
  const table = users('list')
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /^EMAIL +ID +CREATED +SESSIONS +DISABLED\n/)
  t.match(table.stdout, new RegExp(`${alice} +\\S+ +\\S+ +2 +-`))
  t.match(table.stdout, new RegExp(`${bob} +\\S+ +\\S+ +1 +-`))
  const listed = usersJson('list', '--email', 'alice-*')
  t.same(
    listed.users.map((user: { email: string }) => user.email),
    [alice],
  )
  t.equal(listed.users[0].activeSessions, 2)
  t.same(usersJson('list', '--email', 'nobody-at-all').users, [], 'a part of an address matches nothing else')
  t.same(
    usersJson('list', '--email', bob.slice(2, 12)).users.map((user: { email: string }) => user.email),
    [bob],
    'a part of the address, anywhere',
  )

  // show: the account, its sessions, factors and recent events.
  const shown = usersJson('show', alice).user
  t.match(shown, { email: alice, disabledAt: null, emailVerified: false, factors: ['password'], activeSessions: 2 })
  t.equal(shown.sessions.length, 2)
  t.match(shown.sessions[0], { ip: '127.0.0.1', userAgent: 'AdminCliTest/1.0' })
  t.same(
    shown.recentEvents.map((event: { type: string }) => event.type),
    ['login_succeeded', 'signup'],
  )
  const showTable = users('show', alice)
  t.equal(showTable.status, 0)
  t.match(showTable.stdout, new RegExp(`^email +${alice}\\n`))
  t.match(showTable.stdout, /\nactive sessions \(2\)\nID +CREATED +LAST USED +EXPIRES +IP +USER AGENT\n/)
  t.match(showTable.stdout, /\nrecent events \(latest 2\)\nTIME +EVENT +IP +SESSION +USER AGENT\n/)

  // revoke-sessions: both of alice's tokens are refused on their next request; bob's work.
  t.equal((await me(aliceFirst)).status, 200)
  const revoked = usersJson('revoke-sessions', alice)
  t.equal(revoked.revokedSessions, 2)
  for (const session of [aliceFirst, aliceSecond]) {
    const response = await me(session)
    t.equal(response.status, 401, 'revoked: refused on the next request')
    t.equal(((await response.json()) as { code: string }).code, 'SESSION_REVOKED')
  }
  t.equal((await me(bobSession)).status, 200, "another user's session is untouched")
  const afterRevoke = usersJson('show', alice).user
  t.equal(afterRevoke.activeSessions, 0)
  t.match(afterRevoke.recentEvents.slice(0, 2), [
    { type: 'session_revoked', userAgent: 'latchkey CLI', ip: null },
    { type: 'session_revoked', userAgent: 'latchkey CLI', ip: null },
  ])

  // reset-totp: bob turned an authenticator app on and lost it with its codes;
  // the operator turns it off, and the password alone signs in again.
  const bobAuth = { authorization: `Bearer ${bobSession.accessToken}` }
  const confirmation = (await (await post('/auth/password-confirmation', { password: PASSWORD }, bobAuth)).json()) as {
    passwordConfirmationToken: string
  }
  const confirmed = { ...bobAuth, 'x-password-confirmation': confirmation.passwordConfirmationToken }
  const setup = (await (await post('/users/me/mfa/totp', {}, confirmed)).json()) as { secret: string }
  const on = await post('/users/me/mfa/totp/confirm', { code: totp(base32Decode(setup.secret), Date.now()) }, confirmed)
  t.equal(on.status, 200, 'TOTP on')
  t.match(usersJson('show', bob).user.factors, ['password', 'totp'], 'show lists the factor')
  const asksCode = (await (await post('/auth/login', { email: bob, password: PASSWORD })).json()) as {
    mfaRequired?: boolean
  }
  t.equal(asksCode.mfaRequired, true)
  t.match(usersJson('reset-totp', bob), { changed: true })
  t.same(usersJson('show', bob).user.factors, ['password'])
  t.equal((await signIn('/auth/login', bob)).accessToken.length > 0, true, 'the password alone signs in again')
  t.match(usersJson('reset-totp', bob), { changed: false }, 'again: nothing to do')
  t.equal(usersJson('show', bob).user.recentEvents[1].type, 'totp_disabled', 'recorded, by the CLI')

  // disable: the live session ends on its next request; no login, no refresh.
  const live = await signIn('/auth/login', alice)
  t.equal((await me(live)).status, 200)
  const disable = users('disable', alice)
  t.equal(disable.status, 0, disable.stderr)
  t.match(disable.stdout, new RegExp(`^disabled ${alice}; 1 session\\(s\\) ended`))
  const audit = disable.stderr
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
  t.match(audit, [{ msg: 'security event', event: 'account_disabled', sessionId: null, ip: null }])
  const refused = await me(live)
  t.equal(refused.status, 401, "the disabled account's access token is refused on its next request")
  const refreshed = await refresh(live)
  t.equal(refreshed.status, 403)
  t.equal(((await refreshed.json()) as { code: string }).code, 'ACCOUNT_DISABLED')
  const login = await post('/auth/login', { email: alice, password: PASSWORD })
  t.equal(login.status, 403)
  t.equal(((await login.json()) as { code: string }).code, 'ACCOUNT_DISABLED')
  const wrong = await post('/auth/login', { email: alice, password: 'not the password' })
  t.equal(wrong.status, 401, 'a wrong password still says only that: nothing about the account')
  t.match(usersJson('disable', alice), { disabled: true, changed: false, revokedSessions: 0 })
  t.match(usersJson('list', '--email', alice).users[0], { disabledAt: String })

  // enable: alice signs in again.
  t.match(usersJson('enable', alice), { disabled: false, changed: true })
  const back = await signIn('/auth/login', alice)
  t.equal((await me(back)).status, 200)
  t.match(usersJson('enable', alice), { changed: false })
  t.same(
    usersJson('show', alice)
      .user.recentEvents.slice(0, 4)
      .map((event: { type: string }) => event.type),
    ['login_succeeded', 'account_enabled', 'login_failed', 'account_disabled'],
    'a disable that changed nothing is no event',
  )

  // delete: bob and all his data go; his token is refused, his password too.
  const deleted = usersJson('delete', bob)
  t.match(deleted, { deleted: true })
  t.equal((await me(bobSession)).status, 401)
  t.equal((await post('/auth/login', { email: bob, password: PASSWORD })).status, 401)
  t.same(usersJson('list', '--email', bob).users, [])

  // Unknown emails and bad arguments.
  const unknown = users('show', 'nobody@example.com')
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, /no user with the email "nobody@example.com"/)
  t.same(JSON.parse(users('disable', 'nobody@example.com', '--json').stdout), {
    error: 'NOT_FOUND',
    email: 'nobody@example.com',
  })
  t.equal(users().status, 2, 'users needs an action')
  t.equal(users('show').status, 2, 'show needs an email')
  t.equal(users('list', 'extra').status, 2)
  t.equal(users('frobnicate', alice).status, 2)
  t.equal(users('show', alice, '--email', 'x').status, 2, '--email belongs to list')
})
