// The peers: what users would pick instead of latchkey, started by the bench
// beside it (bench/README.md, Peers). Their servers live in bench/peers/, a
// package of its own with its own lockfile, installed here on the first run
// (`npm ci` in that directory) and again whenever its lockfile changes. It is
// kept apart from the project's dependencies: Better Auth's optional peers
// (drizzle-orm, and through it react-native) make npm refuse to add it next to
// tap's React (ERESOLVE), and neither CI nor `npm ci` needs any of it.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { BENCH_DIR, cookiesFrom, postJson } from './lib.mjs'

export const PEERS_DIR = path.join(BENCH_DIR, 'peers')
const STAMP = path.join(PEERS_DIR, 'node_modules', '.latchkey-bench-lock')

/** Installs bench/peers/node_modules from its lockfile unless that install is already there. */
export function ensurePeersInstalled(log) {
  const lockHash = createHash('sha256')
    .update(readFileSync(path.join(PEERS_DIR, 'package-lock.json')))
    .digest('hex')
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === lockHash) return
  log('installing the peers (npm ci in bench/peers; once)')
  // The npm that runs `npm run bench`, else the one on PATH.
  const npmCli = process.env.npm_execpath
  const [command, prefix] = npmCli?.endsWith('.js') ? [process.execPath, [npmCli]] : ['npm', []]
  execFileSync(command, [...prefix, 'ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: PEERS_DIR,
    stdio: ['ignore', 2, 2],
    timeout: 300_000,
  })
  writeFileSync(STAMP, lockHash)
}

/** The installed version of one of the peers' packages. */
export function peerPackageVersion(name) {
  try {
    return JSON.parse(readFileSync(path.join(PEERS_DIR, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

/**
 * Each peer: its server script, its sign-up and login calls, and how a signed-in
 * user presents itself (`cookie`: a Cookie header; `bearer`: the token for
 * `Authorization: Bearer`).
 */
export const PEERS = {
  betterAuth: {
    label: 'Better Auth',
    script: 'better-auth.mjs',
    packages: ['better-auth'],
    hash: 'scrypt N=16384 r=16 p=1, 64-byte key (Better Auth default; node:crypto on the libuv pool, 4 threads)',
    loginPath: '/api/auth/sign-in/email',
    async signIn(port, { email, password, login = false }) {
      const { status, headers, setCookie } = await postJson(
        port,
        login ? '/api/auth/sign-in/email' : '/api/auth/sign-up/email',
        login ? { email, password } : { email, password, name: 'Bench user' },
      )
      if (status !== 200) throw new Error(`Better Auth ${login ? 'sign-in' : 'sign-up'} of ${email}: ${status}`)
      const name = 'better-auth.session_token'
      const token = cookiesFrom(setCookie)[name]
      if (!token || !headers['set-auth-token']) throw new Error('Better Auth sign-up set no session token')
      // The bearer plugin's token (`set-auth-token`): the signed session token, as Better Auth's client sends it.
      return { cookie: `${name}=${token}`, bearer: headers['set-auth-token'] }
    },
  },
  express: {
    label: 'Express + jsonwebtoken',
    script: 'express-jwt.mjs',
    packages: ['express', 'cookie-parser', 'jsonwebtoken', 'bcryptjs'],
    hash: 'bcrypt cost 10 (bcryptjs, JavaScript on the event loop)',
    loginPath: '/auth/login',
    async signIn(port, { email, password, login = false }) {
      const { status, json, setCookie } = await postJson(port, login ? '/auth/login' : '/auth/signup', {
        email,
        password,
      })
      if (status !== (login ? 200 : 201))
        throw new Error(`Express ${login ? 'login' : 'signup'} of ${email}: ${status}`)
      return { cookie: `access_token=${cookiesFrom(setCookie).access_token}`, bearer: json.accessToken }
    },
  },
}
