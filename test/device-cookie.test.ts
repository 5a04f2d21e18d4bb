// Device cookies (API.md section 4; OWASP, "Slow Down Online Guessing Attacks
// with Device Cookies"): guesses from many IPs that exhaust an email's
// account-wide ceiling (10 x AUTH_RATE_LIMIT_MAX failures) do not lock out the
// owner, whose browser signed in before and holds a device cookie of the
// account; any other client gets 429. The cookie is not a credential, is stored
// only as a keyed hash, survives logout, and expired ones are cleaned up.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { cleanupSessions } from '../src/auth/cleanup.js'
import { DEVICE_TOKENS_PER_USER, expiredDeviceTokensQuery, issueDeviceToken } from '../src/auth/device-tokens.js'
import { planNodes, postgresPlan, sqlitePlan } from './data-helper.js'
import {
  buildTestApp,
  confirmPassword,
  cookieHeader,
  cookiesOf,
  onPostgres,
  PASSWORD,
  signup,
  uniqueEmail,
} from './helper.js'

/** AUTH_RATE_LIMIT_MAX for these tests: the email's ceiling is 10 x 2 = 20 failures. */
const MAX = 2
const CEILING = 10 * MAX
const DAY = 86_400_000
const NINETY_DAYS_SECONDS = 90 * 86_400

const loginFrom = (app: FastifyInstance, ip: string, email: string, password: string, deviceCookie?: string) =>
  app.inject({
    method: 'POST',
    url: '/auth/login',
    remoteAddress: ip,
    payload: { email, password },
    headers: deviceCookie === undefined ? {} : { cookie: cookieHeader({ device_token: deviceCookie }) },
  })

/** The device cookie a response set (its signed value, as a browser sends it back). */
function deviceCookieOf(response: LightMyRequestResponse): string {
  const cookie = cookiesOf(response).device_token
  if (!cookie) throw new Error(`no device cookie in ${response.statusCode} ${response.body}`)
  return cookie
}

/** The raw Set-Cookie lines of a response. */
function setCookieLines(response: LightMyRequestResponse): string[] {
  const header = response.headers['set-cookie']
  return header === undefined ? [] : Array.isArray(header) ? header : [header]
}

/** The same signed cookie with one character of its signature changed. */
function tamper(signed: string): string {
  const dot = signed.lastIndexOf('.')
  const signature = signed.slice(dot + 1)
  return `${signed.slice(0, dot + 1)}${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`
}

let attackerIps = 0
const nextAttackerIp = () => {
  attackerIps++
  return `10.77.${Math.floor(attackerIps / 200)}.${(attackerIps % 200) + 1}`
}

/**
 * The attacker: wrong passwords for `email`, each from an IP of its own (so no
 * per-IP limit stops it), until the account-wide ceiling answers 429. Returns
 * how many were checked (401) first.
 */
async function exhaustCeiling(app: FastifyInstance, email: string): Promise<number> {
  for (let failures = 0; failures <= CEILING; failures++) {
    const response = await loginFrom(app, nextAttackerIp(), email, 'an attacker guess')
    if (response.statusCode === 429) return failures
    if (response.statusCode !== 401) throw new Error(`unexpected ${response.statusCode} ${response.body}`)
  }
  throw new Error(`the account-wide ceiling let more than ${CEILING} failures through`)
}

t.test('beyond the account-wide ceiling, only a device cookie of that very account gets in', async (t) => {
  const { app, clock } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: String(MAX) })
  const email = uniqueEmail('owner')
  const signedUp = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    remoteAddress: '192.0.2.1',
    payload: { email, password: PASSWORD },
  })
  t.equal(signedUp.statusCode, 201, 'signed up')
  const ownerId: string = signedUp.json().user.id
  // The browser that signed up, and one that logged in since (elsewhere).
  const devices: Record<string, string> = {
    laptop: deviceCookieOf(signedUp),
    phone: deviceCookieOf(await loginFrom(app, '198.51.100.7', email, PASSWORD)),
  }
  const previousLaptop = devices.laptop as string
  const other = await signup(app)
  const othersDevice = other.cookies.device_token as string
  const expired = app.signCookie(await issueDeviceToken(app.db, app.keys, ownerId, clock.now() - 91 * DAY))
  const bareToken = app.unsignCookie(previousLaptop).value as string

  const scenarios: Array<{
    name: string
    cookie: () => string | undefined
    password?: string
    status: number
    /** The owner's browser whose device cookie a success replaces. */
    renews?: 'laptop' | 'phone'
  }> = [
    { name: 'a new device (no device cookie), right password', cookie: () => undefined, status: 429 },
    { name: 'a device cookie of another account', cookie: () => othersDevice, status: 429 },
    { name: "the owner's device cookie with its signature changed", cookie: () => tamper(previousLaptop), status: 429 },
    { name: "the bare token of the owner's device cookie, unsigned", cookie: () => bareToken, status: 429 },
    {
      name: 'a validly signed value the server never issued',
      cookie: () => app.signCookie('A'.repeat(43)),
      status: 429,
    },
    { name: 'an expired device cookie of the owner', cookie: () => expired, status: 429 },
    // A device cookie lifts the ceiling, not the password check.
    { name: "the owner's phone, wrong password", cookie: () => devices.phone, password: 'not it at all', status: 401 },
    { name: 'the browser that signed up', cookie: () => devices.laptop, status: 200, renews: 'laptop' },
    { name: 'the browser that logged in once', cookie: () => devices.phone, status: 200, renews: 'phone' },
    // Each sign-in replaces the browser's device cookie.
    { name: "the signed-up browser's cookie before its last login", cookie: () => previousLaptop, status: 429 },
    { name: "the signed-up browser's current cookie", cookie: () => devices.laptop, status: 200, renews: 'laptop' },
  ]
  for (const [i, scenario] of scenarios.entries()) {
    await t.test(scenario.name, async (t) => {
      // A success forgets the email's failures, so the attacker starts over after one.
      const resets = i === 0 || scenarios[i - 1]?.status === 200
      t.equal(await exhaustCeiling(app, email), resets ? CEILING : 0, 'the attacker exhausted the ceiling')
      const response = await loginFrom(
        app,
        `203.0.113.${i + 1}`,
        email,
        scenario.password ?? PASSWORD,
        scenario.cookie(),
      )
      t.equal(response.statusCode, scenario.status, `${scenario.status}`, { body: response.body })
      if (scenario.status === 429) {
        t.equal(response.json().code, 'RATE_LIMITED', 'RATE_LIMITED')
        t.ok(Number(response.headers['retry-after']) > 0, 'with Retry-After')
        t.notOk(cookiesOf(response).device_token, 'and no device cookie')
      }
      if (scenario.status === 200) {
        t.equal(response.json().user.id, ownerId, 'signed in as the owner')
        if (scenario.renews) devices[scenario.renews] = deviceCookieOf(response)
      }
    })
  }
})

t.test('a device cookie lifts only the account-wide ceiling: the per email and IP limit still holds', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: String(MAX) })
  const owner = await signup(app)
  const device = owner.cookies.device_token as string
  await exhaustCeiling(app, owner.email)
  for (let i = 1; i <= MAX; i++) {
    const response = await loginFrom(app, '203.0.113.50', owner.email, 'a wrong password', device)
    t.equal(response.statusCode, 401, `failure ${i} from one IP, with the device cookie`)
  }
  const blocked = await loginFrom(app, '203.0.113.50', owner.email, PASSWORD, device)
  t.equal(blocked.statusCode, 429, 'then that IP waits, device cookie or not')
  t.equal((await loginFrom(app, '203.0.113.51', owner.email, PASSWORD, device)).statusCode, 200, 'another IP may')
})

t.test(
  'the device cookie: exactly the attributes of API.md, signed, 256 random bits, stored as a keyed hash',
  async (t) => {
    for (const secure of [true, false]) {
      await t.test(`COOKIE_SECURE=${secure}`, async (t) => {
        const { app, clock } = await buildTestApp(t, secure ? {} : { COOKIE_SECURE: 'false' })
        const email = uniqueEmail()
        const responses = {
          'sign-up': await app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: PASSWORD } }),
          login: await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } }),
        }
        const tokens: string[] = []
        for (const [name, response] of Object.entries(responses)) {
          const lines = setCookieLines(response).filter((line) => line.startsWith('device_token='))
          t.equal(lines.length, 1, `${name} sets one device cookie`)
          const [pair = '', ...attributes] = (lines[0] ?? '').split('; ')
          t.same(
            attributes.sort(),
            [
              'HttpOnly',
              `Max-Age=${NINETY_DAYS_SECONDS}`,
              'Path=/auth',
              'SameSite=Strict',
              ...(secure ? ['Secure'] : []),
            ].sort(),
            `${name}: HttpOnly, Secure per COOKIE_SECURE, SameSite=Strict, Path=/auth, 90 days, and nothing else`,
          )
          const unsigned = app.unsignCookie(decodeURIComponent(pair.slice('device_token='.length)))
          t.equal(unsigned.valid, true, `${name}: signed with COOKIE_SECRET`)
          t.match(unsigned.value, /^[A-Za-z0-9_-]{43}$/, `${name}: 32 random bytes, base64url`)
          tokens.push(unsigned.value as string)
        }
        t.not(tokens[0], tokens[1], 'a new value at each sign-in')

        const userId = responses['sign-up'].json().user.id
        const rows = await app.db.selectFrom('device_tokens').selectAll().execute()
        t.equal(rows.length, 2, 'one row per issued cookie')
        for (const row of rows) {
          t.equal(row.user_id, userId, 'bound to the user')
          t.equal(row.expires_at - row.created_at, NINETY_DAYS_SECONDS * 1000, 'lasts 90 days')
          t.ok(Math.abs(row.created_at - clock.now()) < 60_000, 'made now')
          t.match(row.token_hash, /^[A-Za-z0-9_-]{43}$/, 'a keyed hash (HMAC-SHA-256)')
          const stored = JSON.stringify(row)
          for (const token of tokens) t.notOk(stored.includes(token), 'the database never holds the value in clear')
        }
      })
    }
  },
)

t.test('the device cookie is not a credential', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const onlyDevice = { cookie: cookieHeader({ device_token: account.cookies.device_token }) }
  const scenarios: Array<{ name: string; method: 'GET' | 'POST'; url: string; payload?: object; code: string }> = [
    { name: 'an authenticated route', method: 'GET', url: '/users/me', code: 'AUTH_REQUIRED' },
    { name: 'the sessions of /auth', method: 'GET', url: '/auth/sessions', code: 'AUTH_REQUIRED' },
    { name: 'refresh', method: 'POST', url: '/auth/refresh', code: 'REFRESH_TOKEN_INVALID' },
    {
      name: 'logout of all sessions',
      method: 'POST',
      url: '/auth/logout',
      payload: { scope: 'all' },
      code: 'AUTH_REQUIRED',
    },
  ]
  for (const { name, method, url, payload, code } of scenarios) {
    const response = await app.inject({ method, url, headers: onlyDevice, ...(payload ? { payload } : {}) })
    t.equal(response.statusCode, 401, `${name}: 401`)
    t.equal(response.json().code, code, name)
  }
  const sessions = await app.inject({ url: '/auth/sessions', headers: account.bearer })
  t.equal(sessions.json().items.length, 1, 'no session was ended')
})

t.test('logout (and every other clearing of the auth cookies) keeps the device cookie', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: String(MAX) })
  const owner = await signup(app)
  const device = owner.cookies.device_token as string
  const session = async () => {
    const response = await loginFrom(app, '192.0.2.9', owner.email, PASSWORD)
    return { cookies: cookiesOf(response), bearer: { authorization: `Bearer ${response.json().accessToken}` } }
  }
  const scenarios: Array<{ name: string; send: () => Promise<LightMyRequestResponse> }> = [
    {
      name: 'logout (current, by cookies)',
      send: async () => {
        const { cookies } = await session()
        const cookie = cookieHeader({ ...cookies, device_token: device })
        return app.inject({ method: 'POST', url: '/auth/logout', headers: { cookie } })
      },
    },
    {
      name: 'logout of all sessions',
      send: async () => {
        const { bearer } = await session()
        return app.inject({ method: 'POST', url: '/auth/logout', headers: bearer, payload: { scope: 'all' } })
      },
    },
    {
      name: 'revoking the current session',
      send: async () => {
        const { bearer } = await session()
        const items = (await app.inject({ url: '/auth/sessions', headers: bearer })).json().items
        const current = items.find((item: { current: boolean }) => item.current)
        return app.inject({ method: 'DELETE', url: `/auth/sessions/${current.id}`, headers: bearer })
      },
    },
    {
      name: 'a refresh with an unknown token',
      send: () =>
        app.inject({
          method: 'POST',
          url: '/auth/refresh',
          headers: { cookie: cookieHeader({ refresh_token: app.signCookie('B'.repeat(43)), device_token: device }) },
        }),
    },
  ]
  for (const { name, send } of scenarios) {
    const response = await send()
    const cleared = cookiesOf(response)
    t.equal(cleared.access_token, '', `${name}: clears the access cookie`)
    t.equal(cleared.refresh_token, '', `${name}: clears the refresh cookie`)
    t.notOk(
      setCookieLines(response).some((line) => line.startsWith('device_token=')),
      `${name}: leaves the device cookie alone`,
    )
  }
  await exhaustCeiling(app, owner.email)
  const back = await loginFrom(app, '192.0.2.10', owner.email, PASSWORD, device)
  t.equal(back.statusCode, 200, 'after all that, the device cookie still lets the owner past the ceiling')
})

t.test('each sign-in replaces the device cookie the browser held for that account, no other', async (t) => {
  const { app } = await buildTestApp(t)
  const first = await signup(app)
  const second = await signup(app)
  const rowsOf = async (userId: string) =>
    (await app.db.selectFrom('device_tokens').select('token_hash').where('user_id', '=', userId).execute()).map(
      (row) => row.token_hash,
    )
  const firstRows = await rowsOf(first.userId)
  t.equal(firstRows.length, 1, 'sign-up issued one')

  const again = await loginFrom(app, '192.0.2.20', first.email, PASSWORD, first.cookies.device_token)
  const afterAgain = await rowsOf(first.userId)
  t.equal(afterAgain.length, 1, 'the same browser keeps one row')
  t.not(afterAgain[0], firstRows[0], 'a new one')
  t.not(deviceCookieOf(again), first.cookies.device_token, 'and a new cookie')

  // The same browser signs in to the second account: the first account's row stays.
  await loginFrom(app, '192.0.2.20', second.email, PASSWORD, deviceCookieOf(again))
  t.same(await rowsOf(first.userId), afterAgain, "another account's device token is left alone")
  t.equal((await rowsOf(second.userId)).length, 2, 'the second account has its sign-up one and this one')
})

t.test(`a user keeps at most ${DEVICE_TOKENS_PER_USER} device tokens, the newest`, async (t) => {
  const { app, clock } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: String(MAX) })
  const account = await signup(app)
  const oldest = account.cookies.device_token as string
  // A client without a cookie jar: a new device token at every login.
  let newest = oldest
  for (let i = 0; i < DEVICE_TOKENS_PER_USER + 4; i++) {
    clock.advance(1)
    newest = deviceCookieOf(await loginFrom(app, '192.0.2.30', account.email, PASSWORD))
  }
  const rows = await app.db
    .selectFrom('device_tokens')
    .select('token_hash')
    .where('user_id', '=', account.userId)
    .execute()
  t.equal(rows.length, DEVICE_TOKENS_PER_USER, `${DEVICE_TOKENS_PER_USER} rows left`)
  await exhaustCeiling(app, account.email)
  t.equal((await loginFrom(app, '192.0.2.31', account.email, PASSWORD, oldest)).statusCode, 429, 'the oldest is gone')
  t.equal((await loginFrom(app, '192.0.2.32', account.email, PASSWORD, newest)).statusCode, 200, 'the newest counts')
})

t.test('expired device tokens are deleted by the session cleanup, in index range scans', async (t) => {
  const { app, clock } = await buildTestApp(t)
  const kept = await signup(app)
  const gone = await signup(app)
  await issueDeviceToken(app.db, app.keys, gone.userId, clock.now() - 90 * DAY - 1)
  await issueDeviceToken(app.db, app.keys, kept.userId, clock.now() - 90 * DAY - 1)
  const count = async () =>
    Number(
      (
        await app.db
          .selectFrom('device_tokens')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    )
  t.equal(await count(), 4, 'two live, two expired')
  t.equal(await cleanupSessions(app.db, clock.now(), 1), 2, 'the two expired ones, one batch each')
  const left = await app.db.selectFrom('device_tokens').selectAll().execute()
  t.equal(left.length, 2, 'two left')
  t.ok(
    left.every((row) => row.expires_at > clock.now()),
    'only live ones are left',
  )

  const confirmation = await confirmPassword(app, gone)
  const deleted = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: { ...gone.bearer, 'x-password-confirmation': confirmation },
  })
  t.equal(deleted.statusCode, 204, 'account deleted')
  const rows = await app.db.selectFrom('device_tokens').select('user_id').execute()
  t.same(
    rows.map((row) => row.user_id),
    [kept.userId],
    "a deleted account's device tokens go with it",
  )

  const query = expiredDeviceTokensQuery(app.db, clock.now(), 100).compile()
  if (!onPostgres) {
    const plan = (await sqlitePlan(app, query)).join(' | ')
    t.match(plan, /SEARCH .* USING (COVERING )?INDEX device_tokens_expires_at /, plan)
    t.notMatch(plan, /\bSCAN\b/, 'no table scan')
    return
  }
  const nodes = planNodes(await postgresPlan(app, query))
  const search = nodes.find((node) => /^(Index Scan|Index Only Scan)$/.test(node['Node Type']))
  t.equal(search?.['Index Name'], 'device_tokens_expires_at', 'an index scan')
  t.match(search?.['Index Cond'], /<=/, 'on a range')
  t.notOk(
    nodes.some((node) => node['Node Type'] === 'Seq Scan'),
    'no sequential scan',
  )
})
