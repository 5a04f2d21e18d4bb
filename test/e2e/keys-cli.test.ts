// End to end: `latchkey keys list | rotate | revoke KID` (the built CLI) beside
// a running server process on the same database (SQLite file, or PostgreSQL with
// TEST_DATABASE=postgres). The server picks up what the command did without a
// restart, and once `keys revoke` returns, the key's tokens are refused.
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { PASSWORD, TEST_ENV, tempDir, testDatabaseEnv, uniqueEmail } from '../helper.js'
import { CLI, freePort, json, spawnServer, stopServer, untilHealthy } from './server-process.js'

const kidOf = (token: string): string =>
  JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')).kid

t.test('keys list, rotate and revoke beside a running server', async (t) => {
  const dir = tempDir(t)
  const env = await testDatabaseEnv(t)
  const keys = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, 'keys', ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ...TEST_ENV, DATA_DIR: dir, ...env },
    })
  const server = spawnServer('keys', { dataDir: dir, port: await freePort(), env })
  t.teardown(() => stopServer(server))
  await untilHealthy(server)

  const email = uniqueEmail('keys')
  const signup = await fetch(`${server.base}/auth/signup`, json({ email, password: PASSWORD }))
  t.equal(signup.status, 201)
  const first = ((await signup.json()) as { accessToken: string }).accessToken
  const k1 = kidOf(first)
  const me = async (token: string) =>
    (await fetch(`${server.base}/users/me`, { headers: { authorization: `Bearer ${token}` } })).status
  const published = async () =>
    ((await (await fetch(`${server.base}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys.map(
      (key) => key.kid,
    )
  t.equal(await me(first), 200)

  const list = keys('list')
  t.equal(list.status, 0, list.stderr)
  t.match(list.stdout, /^KID +ALG +STATE +CREATED +SIGNS FROM +RETIRES +LEAVES JWKS +REVOKED\n/)
  t.match(list.stdout, new RegExp(`${k1} +EdDSA +current `))

  const rotate = keys('rotate')
  t.equal(rotate.status, 0, rotate.stderr)
  const k2 = /published (\S+) \(EdDSA\) as next/.exec(rotate.stdout)?.[1] ?? ''
  t.ok(k2, rotate.stdout)
  t.match(rotate.stdout, new RegExp(`${k1} retires then, and leaves the JWKS at `))
  t.match(keys('rotate').stdout, new RegExp(`already under way: ${k2} signs from`), 'one rotation at a time')
  t.match(keys('list').stdout, new RegExp(`${k2} +EdDSA +next `))
  const deadline = Date.now() + 3000
  while (!(await published()).includes(k2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  t.same(await published(), [k1, k2], 'the server publishes the next key without a restart')

  const revoke = keys('revoke', k1)
  t.equal(revoke.status, 0, revoke.stderr)
  t.match(revoke.stdout, new RegExp(`revoked ${k1} \\(was current\\): every instance refuses the tokens it signed`))
  t.match(revoke.stdout, new RegExp(`${k2} \\(EdDSA\\) is the current key now`), 'the pending key takes over at once')
  t.equal(await me(first), 401, "once the command returns, the key's tokens are refused")
  t.same(await published(), [k2])
  const login = await fetch(`${server.base}/auth/login`, json({ email, password: PASSWORD }))
  const second = ((await login.json()) as { accessToken: string }).accessToken
  t.equal(kidOf(second), k2)
  t.equal(await me(second), 200)
  t.match(keys('list').stdout, new RegExp(`${k1} +EdDSA +revoked `))

  t.match(keys('revoke', k1).stdout, /was already revoked/)
  const unknown = keys('revoke', 'no-such-key')
  t.equal(unknown.status, 1)
  t.match(unknown.stderr, /no signing key "no-such-key"/)
  t.equal(keys().status, 2, 'keys needs a subcommand')
  t.equal(keys('revoke').status, 2, 'revoke needs a KID')

  const hs256 = spawnSync(process.execPath, [CLI, 'keys', 'rotate'], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...TEST_ENV, DATA_DIR: dir, ...env, JWT_ALGORITHM: 'HS256' },
  })
  t.equal(hs256.status, 1)
  t.match(hs256.stderr, /JWT_ALGORITHM=HS256.*no key to rotate/)
})
