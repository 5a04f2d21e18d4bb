// Cross-site requests, CORS, security headers, error shapes, rate limits and
// log hygiene: contract sections 1 and 4.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import {
  buildLoggedTestApp,
  buildTestApp,
  confirmPassword,
  cookieHeader,
  PASSWORD,
  signup,
  uniqueEmail,
} from './helper.js'

t.test('CSRF: cookie-authenticated writes from another origin are refused', async (t) => {
  const { app } = await buildTestApp(t, { CORS_ALLOWED_ORIGIN: 'https://app.example.com' })
  const account = await signup(app)
  const cookie = cookieHeader(account.cookies)
  const write = (headers: Record<string, string>) =>
    app.inject({ method: 'POST', url: '/auth/logout', payload: { scope: 'others' }, headers })
  const cases: Array<[string, Record<string, string>, number]> = [
    ['cross-site Origin', { cookie, origin: 'https://evil.example' }, 403],
    ['Origin null', { cookie, origin: 'null' }, 403],
    ['same host, other scheme', { cookie, origin: 'https://localhost:80' }, 403],
    ['Sec-Fetch-Site cross-site without Origin', { cookie, 'sec-fetch-site': 'cross-site' }, 403],
    ['own origin', { cookie, origin: 'http://localhost:80', host: 'localhost:80' }, 204],
    ['listed origin', { cookie, origin: 'https://app.example.com' }, 204],
    ['same-site fetch without Origin', { cookie, 'sec-fetch-site': 'same-origin' }, 204],
    ['no Origin and no Sec-Fetch-Site (non-browser client)', { cookie }, 204],
    ['bearer from anywhere', { ...account.bearer, origin: 'https://evil.example' }, 204],
  ]
  for (const [name, headers, status] of cases) {
    const response = await write(headers)
    t.equal(response.statusCode, status, name)
    if (status === 403) t.equal(response.json().code, 'CSRF_REJECTED', name)
  }
})

t.test('CSRF: a cross-site write changes nothing', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const token = await confirmPassword(app, account)
  const response = await app.inject({
    method: 'DELETE',
    url: '/users/me',
    headers: {
      cookie: cookieHeader({ ...account.cookies, password_confirmation_token: undefined }),
      'x-password-confirmation': token,
      origin: 'https://evil.example',
    },
  })
  t.equal(response.statusCode, 403)
  t.equal(response.json().code, 'CSRF_REJECTED')
  t.equal((await app.inject({ url: '/users/me', headers: account.bearer })).statusCode, 200, 'account still there')
})

t.test('CSRF: login, sign-up and refresh are always checked', async (t) => {
  const { app } = await buildTestApp(t)
  const account = await signup(app)
  const evil = { origin: 'https://evil.example' }
  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    headers: evil,
    payload: { email: account.email, password: PASSWORD },
  })
  t.equal(login.json().code, 'CSRF_REJECTED', 'login CSRF')
  const signupResponse = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    headers: evil,
    payload: { email: uniqueEmail(), password: PASSWORD },
  })
  t.equal(signupResponse.json().code, 'CSRF_REJECTED')
  const refresh = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { ...evil, cookie: cookieHeader({ refresh_token: account.cookies.refresh_token }) },
  })
  t.equal(refresh.json().code, 'CSRF_REJECTED')
  const users = await app.db.selectFrom('users').select('id').execute()
  t.equal(users.length, 1, 'no account created cross-site')
})

t.test('CORS: listed origins get credentials, others no CORS headers', async (t) => {
  const { app } = await buildTestApp(t, { CORS_ALLOWED_ORIGIN: 'https://app.example.com,http://localhost:5173' })
  const account = await signup(app)
  const listed = await app.inject({ url: '/users/me', headers: { ...account.bearer, origin: 'http://localhost:5173' } })
  t.equal(listed.headers['access-control-allow-origin'], 'http://localhost:5173')
  t.equal(listed.headers['access-control-allow-credentials'], 'true')
  const other = await app.inject({ url: '/users/me', headers: { ...account.bearer, origin: 'https://evil.example' } })
  t.equal(other.headers['access-control-allow-origin'], undefined)
  t.equal(other.headers['access-control-allow-credentials'], undefined)
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/tasks',
    headers: {
      origin: 'https://app.example.com',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    },
  })
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com')
  t.match(preflight.headers['access-control-allow-methods'], /POST/)
  const evilPreflight = await app.inject({
    method: 'OPTIONS',
    url: '/tasks',
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
  })
  t.equal(evilPreflight.headers['access-control-allow-origin'], undefined)
})

t.test('security headers on every response, errors included', async (t) => {
  const { app } = await buildTestApp(t)
  const responses = [
    await app.inject('/health'),
    await app.inject('/no/such/route'),
    await app.inject({ url: '/users/me' }),
    await app.inject({ method: 'POST', url: '/auth/login', payload: 'x', headers: { 'content-type': 'text/plain' } }),
  ]
  for (const response of responses) {
    const name = `${response.statusCode} ${response.raw.req.url}`
    t.equal(response.headers['x-content-type-options'], 'nosniff', name)
    t.match(response.headers['strict-transport-security'], /max-age=/, name)
    t.ok(response.headers['content-security-policy'], `${name}: CSP`)
    t.ok(response.headers['referrer-policy'], `${name}: Referrer-Policy`)
    t.equal(response.headers['x-powered-by'], undefined, name)
    // Helmet's documented defaults, the same on every response.
    t.match(
      response.headers,
      {
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
        'origin-agent-cluster': '?1',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'x-dns-prefetch-control': 'off',
        'x-download-options': 'noopen',
        'x-frame-options': 'SAMEORIGIN',
        'x-permitted-cross-domain-policies': 'none',
        'x-xss-protection': '0',
        'content-security-policy': /^default-src 'self';.*frame-ancestors 'self';.*object-src 'none'/,
      },
      name,
    )
  }
})

t.test('error shapes: 404, 415, 413, bad JSON, empty body', async (t) => {
  const { app } = await buildTestApp(t, { BODY_LIMIT: '1024' })
  const notFound = await app.inject('/nope')
  t.same(notFound.json(), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'Not found' })
  const wrongMethod = await app.inject({ method: 'DELETE', url: '/health' })
  t.equal(wrongMethod.json().code, 'NOT_FOUND')

  const textBody = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: 'email=a',
    headers: { 'content-type': 'text/plain' },
  })
  t.equal(textBody.statusCode, 415)
  t.equal(textBody.json().code, 'UNSUPPORTED_MEDIA_TYPE')
  const formBody = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: 'email=a%40b.c&password=x',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  })
  t.equal(formBody.statusCode, 415, 'forms are not accepted (no CSRF via form posts)')

  const large = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email: uniqueEmail(), password: 'x'.repeat(2000) },
  })
  t.equal(large.statusCode, 413)
  t.equal(large.json().code, 'PAYLOAD_TOO_LARGE')

  const secret = 'hunter2-super-secret'
  const badJson = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: `{"email":"a@b.c","password":"${secret}"`,
    headers: { 'content-type': 'application/json' },
  })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json().code, 'VALIDATION_FAILED')
  t.ok(Array.isArray(badJson.json().details))
  t.notMatch(badJson.body, secret, 'the body is not echoed')

  const charset = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: JSON.stringify({ email: uniqueEmail(), password: PASSWORD }),
    headers: { 'content-type': 'application/json; charset=utf-8' },
  })
  t.equal(charset.statusCode, 201, 'a charset parameter is fine')

  const longId = await app.inject({ url: `/tasks/${'x'.repeat(300)}` })
  t.equal(longId.statusCode, 404, 'an id longer than any id is simply not found')
  t.same(Object.keys(longId.json()).sort(), ['code', 'error', 'message', 'statusCode'])
  t.equal(longId.headers['x-content-type-options'], 'nosniff')
  const badUrl = await app.inject({ url: '/tasks/%E0%A4%A' })
  t.equal(badUrl.statusCode, 400)
  t.equal(badUrl.json().code, 'VALIDATION_FAILED')

  const emptyJson = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: '',
    headers: { 'content-type': 'application/json' },
  })
  t.equal(emptyJson.statusCode, 400)
  t.equal(emptyJson.json().code, 'VALIDATION_FAILED', 'an empty body where one is needed')
})

t.test('rate limit per client IP on every route', async (t) => {
  const { app } = await buildTestApp(t, { RATE_LIMIT_MAX: '5' })
  for (let i = 0; i < 5; i++) t.equal((await app.inject('/health')).statusCode, 200)
  const limited = await app.inject('/health')
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().code, 'RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After')
  t.equal(limited.headers['x-content-type-options'], 'nosniff')
  const unknownRoute = await app.inject('/nowhere')
  t.equal(unknownRoute.statusCode, 429, 'unknown routes count too')
  const otherIp = await app.inject({ url: '/health', remoteAddress: '10.1.2.3' })
  t.equal(otherIp.statusCode, 200, 'per IP')
  const spoofed = await app.inject({ url: '/health', headers: { 'x-forwarded-for': '10.9.9.9' } })
  t.equal(spoofed.statusCode, 429, 'X-Forwarded-For is ignored without TRUST_PROXY')
})

t.test('TRUST_PROXY: X-Forwarded-For gives the client IP for limits and sessions', async (t) => {
  const { app } = await buildTestApp(t, { RATE_LIMIT_MAX: '3', TRUST_PROXY: '127.0.0.1' })
  const account = await signup(app, { headers: { 'x-forwarded-for': '203.0.113.7' } })
  const sessions = await app.inject({
    url: '/auth/sessions',
    headers: { ...account.bearer, 'x-forwarded-for': '203.0.113.7' },
  })
  t.equal(sessions.json().items[0].ip, '203.0.113.7')
  for (let i = 0; i < 3; i++) await app.inject({ url: '/health', headers: { 'x-forwarded-for': '198.51.100.1' } })
  t.equal((await app.inject({ url: '/health', headers: { 'x-forwarded-for': '198.51.100.1' } })).statusCode, 429)
  t.equal((await app.inject({ url: '/health', headers: { 'x-forwarded-for': '198.51.100.2' } })).statusCode, 200)
})

const attemptLogin = (app: FastifyInstance, email: string, password: string, remoteAddress: string) =>
  app.inject({ method: 'POST', url: '/auth/login', remoteAddress, payload: { email, password } })

t.test('failed logins per email and IP: then that IP waits, even with the right password', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '3' })
  const account = await signup(app)
  for (let i = 1; i <= 3; i++) {
    t.equal((await attemptLogin(app, account.email, 'wrong password', '10.0.0.1')).statusCode, 401, `failure ${i}`)
  }
  const blocked = await attemptLogin(app, account.email.toUpperCase(), PASSWORD, '10.0.0.1')
  t.equal(blocked.statusCode, 429, 'the right password from that IP is refused')
  t.equal(blocked.json().code, 'RATE_LIMITED')
  const retryAfter = Number(blocked.headers['retry-after'])
  t.ok(retryAfter > 0 && retryAfter <= 15 * 60, `Retry-After ${retryAfter}`)
  const otherAccount = await signup(app)
  t.equal(
    (await attemptLogin(app, otherAccount.email, PASSWORD, '10.0.0.1')).statusCode,
    200,
    'other emails from that IP are not affected',
  )
  t.equal(
    (await attemptLogin(app, account.email, PASSWORD, '10.0.0.2')).statusCode,
    200,
    'the owner elsewhere is not locked out by the guesses of another IP',
  )
})

t.test('failed logins per IP, across emails: 5 x AUTH_RATE_LIMIT_MAX, then that IP waits', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '2' })
  const account = await signup(app)
  for (let i = 1; i <= 10; i++) {
    const response = await attemptLogin(app, uniqueEmail('stuffed'), 'wrong password', '10.0.2.1')
    t.equal(response.statusCode, 401, `failure ${i}, another email each time`)
  }
  const blocked = await attemptLogin(app, account.email, PASSWORD, '10.0.2.1')
  t.equal(blocked.statusCode, 429, 'that IP may not try even a real account with its right password')
  t.equal(blocked.json().code, 'RATE_LIMITED')
  t.equal((await attemptLogin(app, account.email, PASSWORD, '10.0.2.2')).statusCode, 200, 'other IPs may')
})

t.test(
  'failed logins per email, across IPs: beyond 10 x AUTH_RATE_LIMIT_MAX the right password waits too',
  async (t) => {
    const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '2' })
    const account = await signup(app)
    for (let i = 1; i <= 20; i++) {
      const response = await attemptLogin(app, account.email, 'wrong password', `10.0.3.${i}`)
      t.equal(response.statusCode, 401, `failure ${i}, from its own IP`)
    }
    const blocked = await attemptLogin(app, account.email, PASSWORD, '10.0.3.99')
    t.equal(blocked.statusCode, 429, 'the right password from a new IP, without a device cookie, is refused')
    t.equal(blocked.json().code, 'RATE_LIMITED')
    const retryAfter = Number(blocked.headers['retry-after'])
    t.ok(retryAfter > 0 && retryAfter <= 15 * 60, `Retry-After ${retryAfter}`)
    const otherAccount = await signup(app)
    t.equal(
      (await attemptLogin(app, otherAccount.email, PASSWORD, '10.0.3.99')).statusCode,
      200,
      'other emails are not affected',
    )
  },
)

t.test('a flood of failed logins in parallel cannot pass a limit', async (t) => {
  const scenarios: Array<{ name: string; max: number; guesses: number; ips: 'one' | 'each'; checked: number }> = [
    { name: 'from one IP: AUTH_RATE_LIMIT_MAX per email and IP', max: 5, guesses: 20, ips: 'one', checked: 5 },
    { name: 'from many IPs: 10 x AUTH_RATE_LIMIT_MAX per email', max: 2, guesses: 30, ips: 'each', checked: 20 },
  ]
  for (const { name, max, guesses, ips, checked } of scenarios) {
    await t.test(name, async (t) => {
      const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: String(max) })
      const account = await signup(app)
      const responses = await Promise.all(
        Array.from({ length: guesses }, (_, i) =>
          attemptLogin(app, account.email, `guess number ${i}`, ips === 'one' ? '10.0.1.1' : `10.0.1.${i + 1}`),
        ),
      )
      const counts: Record<number, number> = {}
      for (const response of responses) counts[response.statusCode] = (counts[response.statusCode] ?? 0) + 1
      t.same(counts, { 401: checked, 429: guesses - checked }, `exactly ${checked} guesses were checked`)
    })
  }
})

t.test('wrong current passwords and confirmations count as failed logins', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '2' })
  const account = await signup(app)
  await app.inject({
    method: 'PUT',
    url: '/users/me/password',
    headers: account.bearer,
    payload: { currentPassword: 'nope nope', newPassword: 'whatever passphrase' },
  })
  await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation',
    headers: account.bearer,
    payload: { password: 'nope nope' },
  })
  const login = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: PASSWORD },
  })
  t.equal(login.statusCode, 429)
})

t.test('sign-ups and password confirmations per IP', async (t) => {
  const { app } = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '2' })
  const first = await signup(app)
  await signup(app)
  const third = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    payload: { email: uniqueEmail(), password: PASSWORD },
  })
  t.equal(third.statusCode, 429)
  t.equal(third.json().code, 'RATE_LIMITED')
  t.ok(Number(third.headers['retry-after']) > 0)
  const elsewhere = await app.inject({
    method: 'POST',
    url: '/auth/signup',
    remoteAddress: '10.3.3.3',
    payload: { email: uniqueEmail(), password: PASSWORD },
  })
  t.equal(elsewhere.statusCode, 201, 'another IP may sign up')
  await confirmPassword(app, first)
  await confirmPassword(app, first)
  const confirmation = await app.inject({
    method: 'POST',
    url: '/auth/password-confirmation',
    headers: first.bearer,
    payload: { password: PASSWORD },
  })
  t.equal(confirmation.statusCode, 429)
})

t.test('logs never contain a password, a token or a cookie, at any level', async (t) => {
  const { app, config, lines } = await buildLoggedTestApp(t, { LOG_LEVEL: 'trace' })

  const password = 'Zebra-Unicorn-Password-42'
  const account = await signup(app, { password })
  const token = await confirmPassword(app, account)
  const refresh = await app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: { cookie: cookieHeader(account.cookies) },
  })
  await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { email: account.email, password: 'Wrong-Password-Zebra' },
  })
  await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: `{"email":"x@y.z","password":"Broken-Json-Zebra"`,
    headers: { 'content-type': 'application/json' },
  })
  await app.inject({
    url: `/users/me?access_token=${account.accessToken}`,
    headers: { 'x-password-confirmation': token },
  })
  await app.inject({
    method: 'PUT',
    url: '/users/me/password',
    headers: account.bearer,
    payload: { currentPassword: password, newPassword: 'Another-Zebra-Phrase-7' },
  })

  const log = lines.join('')
  t.ok(lines.length > 10, 'trace logging happened')
  const secrets = [
    password,
    'Wrong-Password-Zebra',
    'Broken-Json-Zebra',
    'Another-Zebra-Phrase-7',
    account.accessToken,
    token,
    refresh.json().accessToken,
    ...Object.values(account.cookies),
    decodeURIComponent(account.cookies.refresh_token ?? '').split('.')[0] ?? 'x',
    config.jwtSecret,
    config.cookieSecret,
  ]
  for (const secret of secrets) t.notOk(log.includes(secret), `log does not contain ${secret.slice(0, 12)}…`)
  t.notMatch(log, /\$argon2/, 'no hashes')
})

t.test('one access-log line per request: method, path without query, status, time, address', async (t) => {
  const { app, lines } = await buildLoggedTestApp(t)
  const account = await signup(app)
  lines.length = 0
  await app.inject({ url: '/users/me?debug=secret-query-value', headers: account.bearer, remoteAddress: '10.9.8.7' })
  // Lines of this request (background work, such as the sign-up's verification mail, logs without a reqId).
  const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => 'reqId' in line)
  t.equal(entries.length, 1, 'one line, not a line on arrival and another on completion')
  const [entry] = entries
  t.match(entry, {
    level: 30,
    msg: 'request completed',
    reqId: String,
    method: 'GET',
    url: '/users/me',
    statusCode: 200,
    responseTime: Number,
    remoteAddress: '10.9.8.7',
  })
  t.notOk(lines[0]?.includes('secret-query-value'), 'no query string')

  lines.length = 0
  await app.inject({ url: '/users/me', headers: { authorization: 'Bearer nope' } })
  t.match(JSON.parse(lines.at(-1) ?? '{}'), { msg: 'request completed', url: '/users/me', statusCode: 401 })
})
