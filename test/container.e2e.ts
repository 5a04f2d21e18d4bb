// End to end, `npm run test:container` (run by .ci/run's container step, apart
// from `npm test`: it needs root, Podman and .ci/container-base's base image).
//
// No container runtime can start a container on this machine, so the image is
// checked the way a runtime would use it: built from ./Dockerfile with
// `podman build --pull=never` (BINARY=prebuilt: the dist/latchkey this test
// builds), then mounted. The test checks what it declares (entrypoint, user,
// volume, port, health check, stop signal, labels), that its user can write
// nothing outside /data, that no layer carries a secret, and its size. Then it
// runs the image's own entrypoint on the image's filesystem, read-only as with
// `docker run --read-only`, with /proc, a minimal /dev and a temporary /data
// volume, under `chroot --userspec=65532:65532` with the image's environment,
// and passes the single binary's smoke test: sign up, refresh, a task, log
// out, restart on the same data. It also validates deploy/compose.yaml against
// the Compose specification's schema (dclint), runs the README's .env block,
// and has Caddy parse deploy/Caddyfile.
import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  type Stats,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import { DCLinter } from 'dclint'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { buildBinary } from '../scripts/build-binary.js'
import { loadConfig } from '../src/config.js'
import { PASSWORD, sleep, TEST_SECRETS, tempDir } from './helper.js'

const ROOT = path.resolve(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; license: string }
/** .ci/container-base makes it (or tags distroless as it). */
const BASE_IMAGE = process.env.LATCHKEY_BASE_IMAGE ?? 'localhost/latchkey-base:bookworm'
const IMAGE = `localhost/latchkey:test-${process.pid}`
const USER = 65532
const ENTRYPOINT = '/usr/local/bin/latchkey'
/** The image may add at most this much to the binary (the base: distroless cc is about 20 MB, CI's equivalent 18). */
const BASE_BUDGET = 40 * 1024 * 1024
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

/** Runs a command and returns its stdout; throws with its stderr if it fails. */
function run(command: string, args: string[], options: { cwd?: string; input?: string } = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.error ?? ''}${result.stderr}`)
  }
  return result.stdout
}

const which = (command: string): string | undefined =>
  spawnSync('/bin/sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).stdout.trim() || undefined

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

async function call(url: string, method: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  return { response, status: response.status, text, json: () => JSON.parse(text) }
}

/** name -> value of the cookies a response sets. */
const cookiesOf = (response: Response): Record<string, string> =>
  Object.fromEntries(
    response.headers.getSetCookie().map((cookie) => {
      const [pair = ''] = cookie.split(';')
      const index = pair.indexOf('=')
      return [pair.slice(0, index), pair.slice(index + 1)]
    }),
  )

// ---------------------------------------------------------------------------
// deploy/compose.yaml, deploy/Caddyfile and the README's blocks

/** The README's section `title`, up to the next heading of its level. */
function readmeSection(title: string): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf(`\n## ${title}\n`)
  if (start < 0) throw new Error(`README.md has no section "## ${title}"`)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

/** The fenced `sh` blocks of a README section. */
const shellBlocks = (section: string): string[] =>
  [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] as string)

/** dclint's findings that are the Compose file's validity, not its style. */
const VALIDITY = new Set(['invalid-yaml', 'invalid-schema', 'unknown-error'])

function lintCompose(file: string) {
  const linter = new DCLinter({ rules: {}, quiet: true, debug: false, exclude: [] })
  const [result] = linter.lintFiles([file], false)
  if (!result) throw new Error(`dclint did not read ${file}`)
  return result.messages.filter((message: { rule: string }) => VALIDITY.has(message.rule))
}

interface ComposeService {
  image?: string
  build?: { context: string; dockerfile: string }
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
  volumes?: string[]
  read_only?: boolean
  tmpfs?: string[]
  networks?: string[]
  ports?: string[]
  stop_grace_period?: string
}

t.test('deploy/compose.yaml, deploy/Caddyfile and the README blocks', async (t) => {
  const composeFile = path.join(ROOT, 'deploy', 'compose.yaml')

  await t.test('compose.yaml is valid against the Compose specification (dclint)', async (t) => {
    t.same(lintCompose(composeFile), [], 'no YAML or schema error')
    // The validator bites: the same file with one wrong value is refused.
    const broken = path.join(tempDir(t, 'latchkey-compose-'), 'compose.yaml')
    writeFileSync(
      broken,
      readFileSync(composeFile, 'utf8').replace('condition: service_healthy', 'condition: service_ready'),
    )
    const errors = lintCompose(broken)
    t.equal(errors[0]?.rule, 'invalid-schema', 'a depends_on condition outside the schema is an error', { errors })
  })

  const compose = parseYaml(readFileSync(composeFile, 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>
    volumes: Record<string, unknown>
    networks: Record<string, { internal?: boolean }>
  }
  const services = compose.services
  const instances = ['latchkey-a', 'latchkey-b']
  const secretNames = ['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET', 'COOKIE_SECRET', 'DATA_ENCRYPTION_KEY', 'TRUST_PROXY']

  await t.test('two instances on PostgreSQL and Redis, behind Caddy, in order', async (t) => {
    t.same(Object.keys(services).sort(), ['latchkey-a', 'latchkey-b', 'postgres', 'proxy', 'redis'], 'the services')
    for (const name of instances) {
      const service = services[name] as ComposeService
      t.equal(service.image, services['latchkey-a']?.image, `${name}: the same image`)
      t.same(service.build, { context: '..', dockerfile: 'Dockerfile' }, `${name}: built from ./Dockerfile`)
      for (const variable of secretNames) {
        t.match(
          service.environment?.[variable],
          new RegExp(`^\\$\\{${variable}:\\?[^}]+\\}$`),
          `${name}: ${variable} comes from .env, and is required`,
        )
      }
      t.same(
        service.depends_on,
        { postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } },
        `${name}: starts once PostgreSQL and Redis are healthy`,
      )
      t.same(service.healthcheck?.test.slice(0, 3), ['CMD', ENTRYPOINT, 'healthcheck'], `${name}: health check`)
      t.equal(service.read_only, true, `${name}: read-only root filesystem`)
      t.match(service.tmpfs?.[0], /^\/data:.*uid=65532,gid=65532,mode=0700,exec/, `${name}: /data for the addons`)
      t.notOk(service.ports, `${name}: publishes no port`)
    }
    for (const name of ['postgres', 'redis']) {
      t.ok(services[name]?.healthcheck?.test.length, `${name}: health check`)
      t.same(services[name]?.networks, ['data'], `${name}: only on the internal network`)
    }
    t.equal(compose.networks.data?.internal, true, 'the data network has no way out')
    t.ok(
      services.postgres?.volumes?.includes('postgres-data:/var/lib/postgresql/data'),
      "PostgreSQL's data on a named volume",
    )
    t.ok('postgres-data' in compose.volumes, 'declared at the top level')
    t.match(
      services.postgres?.environment?.POSTGRES_PASSWORD,
      /^\$\{POSTGRES_PASSWORD:\?[^}]+\}$/,
      "PostgreSQL's password comes from .env",
    )
    t.same(
      services.proxy?.depends_on,
      { 'latchkey-a': { condition: 'service_healthy' }, 'latchkey-b': { condition: 'service_healthy' } },
      'Caddy starts once both instances are healthy',
    )
    t.ok(services.proxy?.volumes?.includes('./Caddyfile:/etc/caddy/Caddyfile:ro'), 'Caddy reads deploy/Caddyfile')
  })

  await t.test('Caddy parses deploy/Caddyfile: both instances, checked on /ready', async (t) => {
    const caddy = which('caddy')
    if (!caddy) {
      t.fail("caddy is not installed (Debian's caddy package; .ci/run installs it)")
      return
    }
    const config = JSON.parse(
      run(caddy, ['adapt', '--config', path.join(ROOT, 'deploy', 'Caddyfile'), '--adapter', 'caddyfile']),
    )
    const proxy = JSON.stringify(config)
    t.match(proxy, /"upstreams":\[\{"dial":"latchkey-a:3000"\},\{"dial":"latchkey-b:3000"\}\]/, 'both upstreams')
    t.match(proxy, /"active":\{[^}]*"uri":"\/ready"/, 'active health checks on /ready')
    t.match(proxy, /"host":\["localhost"\]/, 'localhost by default')
  })

  await t.test("the README's .env block makes a configuration latchkey accepts", async (t) => {
    const section = readmeSection('Run several instances with compose')
    const block = shellBlocks(section)[0] ?? ''
    // The block up to `docker compose`: what makes deploy/.env.
    const lines = block.split('\n')
    const setup = lines
      .slice(
        0,
        lines.findIndex((line) => line.startsWith('docker ')),
      )
      .join('\n')
    if (!/^cd deploy\n[\s\S]*cat > \.env <<ENV\n[\s\S]*\nENV\n/.test(`${setup}\n`)) {
      t.fail('the first block of the section goes to deploy/ and writes .env with a heredoc', { block })
      return
    }
    const makeEnv = (dir: string): string => {
      mkdirSync(path.join(dir, 'deploy'))
      run('bash', ['-euo', 'pipefail', '-c', setup], { cwd: dir })
      return path.join(dir, 'deploy', '.env')
    }
    const dir = tempDir(t, 'latchkey-compose-env-')
    const envFile = makeEnv(dir)
    t.equal(statSync(envFile).mode & 0o777, 0o600, '.env is 0600')
    const dotenv = Object.fromEntries(
      readFileSync(envFile, 'utf8')
        .split('\n')
        .filter((line) => line.includes('='))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    )
    const required = new Set(
      [...readFileSync(composeFile, 'utf8').matchAll(/\$\{([A-Z_]+):\?/g)].map((match) => match[1] as string),
    )
    t.same(Object.keys(dotenv).sort(), [...required, 'LATCHKEY_SITE'].sort(), 'every variable compose requires')
    const password = dotenv.POSTGRES_PASSWORD ?? ''
    t.ok(password.length >= 32, 'a long PostgreSQL password')
    t.equal(
      dotenv.DATABASE_URL,
      `postgres://latchkey:${password}@postgres:5432/latchkey`,
      'DATABASE_URL names the compose PostgreSQL with that password',
    )
    // The instances' environment, as compose interpolates it, on top of the image's.
    const environment = Object.fromEntries(
      Object.keys(services['latchkey-a']?.environment ?? {}).map((name) => [name, dotenv[name] ?? '']),
    )
    const config = loadConfig({ env: { ...environment, DATA_DIR: dir }, cwd: dir })
    t.equal(config.database.kind, 'postgres', 'on PostgreSQL')
    t.equal(config.trustProxy, 1, 'trusts one hop: Caddy')
    t.equal(config.redisUrl, 'redis://redis:6379', 'Redis of the compose file')
    t.not(dotenv.JWT_SECRET, dotenv.COOKIE_SECRET, 'distinct secrets')
    const again = path.join(dir, 'again')
    mkdirSync(again)
    t.not(readFileSync(makeEnv(again), 'utf8'), readFileSync(envFile, 'utf8'), 'new secrets each time')
  })
})

// ---------------------------------------------------------------------------
// The image

interface ImageConfig {
  User: string
  Entrypoint: string[]
  Cmd: string[]
  Env: string[]
  WorkingDir: string
  ExposedPorts: Record<string, unknown>
  Volumes: Record<string, unknown>
  Labels: Record<string, string>
  StopSignal: string
}

/** A file or directory that `uid`:`gid` may change: theirs, or writable by their group or by anyone. */
function writableBy(stat: { uid: number; gid: number; mode: number }, uid: number, gid: number): boolean {
  return stat.uid === uid || (stat.gid === gid && (stat.mode & 0o020) !== 0) || (stat.mode & 0o002) !== 0
}

/** Every path under `root` (relative, with a leading /), without following links or leaving the filesystem. */
function walk(root: string, visit: (relative: string, stat: Stats) => void): void {
  const stack = ['/']
  while (stack.length > 0) {
    const relative = stack.pop() as string
    const stat = lstatSync(path.join(root, relative))
    visit(relative, stat)
    if (stat.isDirectory()) {
      for (const name of readdirSync(path.join(root, relative))) stack.push(path.posix.join(relative, name))
    }
  }
}

/** Values that must never be in the image: this checkout's own secrets, if it has any, and the tests'. */
function knownSecrets(): string[] {
  const values = new Set(Object.values(TEST_SECRETS))
  const secretName = /SECRET|KEY|PASSWORD|TOKEN|_URL$/
  for (const file of ['.env', 'deploy/.env']) {
    const text = existsSync(path.join(ROOT, file)) ? readFileSync(path.join(ROOT, file), 'utf8') : ''
    for (const line of text.split('\n')) {
      const match = /^\s*([A-Z0-9_]+)\s*=\s*"?([^"\n]*)"?\s*$/.exec(line)
      if (match && secretName.test(match[1] as string) && (match[2] as string).length >= 12)
        values.add(match[2] as string)
    }
  }
  for (const file of ['data/secrets.json']) {
    if (!existsSync(path.join(ROOT, file))) continue
    for (const value of Object.values(JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as object)) {
      if (typeof value === 'string' && value.length >= 12) values.add(value)
    }
  }
  return [...values]
}

/** Names that hold secrets or data, wherever they are. */
const SECRET_FILE =
  /(^|\/)(\.env(\..*)?|secrets\.json|[^/]*\.db(-wal|-shm|-journal)?|id_(rsa|ecdsa|ed25519)|\.npmrc|\.netrc|\.git-credentials|\.git|node_modules)$/
const PRIVATE_KEY = /-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}/

/**
 * A root filesystem as a runtime makes it from the image, for `docker run
 * --read-only -v <volume>:/data`: the image read-only (an overlay with one
 * more lower layer that holds only the mount points), /proc, a /dev with the
 * usual devices, and `dataDir` at /data. Unmounted at teardown.
 */
function containerRoot(t: Parameters<typeof tempDir>[0], imageRoot: string, dataDir: string): string {
  const dir = tempDir(t, 'latchkey-container-root-')
  const mountPoints = path.join(dir, 'mount-points')
  for (const name of ['proc', 'dev']) mkdirSync(path.join(mountPoints, name), { recursive: true })
  const root = path.join(dir, 'root')
  mkdirSync(root)
  const mounted: string[] = []
  t.teardown(() => {
    for (const target of mounted.reverse()) {
      if (spawnSync('umount', [target]).status !== 0) spawnSync('umount', ['-l', target])
    }
  })
  const mount = (args: string[], target: string) => {
    run('mount', [...args, target])
    mounted.push(target)
  }
  mount(['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${mountPoints}:${imageRoot}`], root)
  mount(['-t', 'proc', '-o', 'nosuid,nodev,noexec', 'proc'], path.join(root, 'proc'))
  mount(['-t', 'tmpfs', '-o', 'nosuid,noexec,mode=0755,size=64k', 'tmpfs'], path.join(root, 'dev'))
  for (const device of ['null', 'zero', 'full', 'random', 'urandom']) {
    writeFileSync(path.join(root, 'dev', device), '')
    mount(['--bind', `/dev/${device}`], path.join(root, 'dev', device))
  }
  mount(['--bind', dataDir], path.join(root, 'data'))
  return root
}

interface Running {
  child: ChildProcess
  url: string
  output: () => string
}

t.test('the container image', async (t) => {
  if (process.getuid?.() !== 0) {
    t.fail('needs root: podman build, image mounts and chroot (CI runs as root)')
    return
  }
  if (!which('podman')) {
    t.fail("podman is not installed (.ci/container-base installs Debian's podman)")
    return
  }
  if (spawnSync('podman', ['image', 'exists', BASE_IMAGE]).status !== 0) {
    t.fail(`no base image ${BASE_IMAGE}: run .ci/container-base first`)
    return
  }

  const binary = await buildBinary({ log: (line) => t.comment(line) })
  // The build leaves its stages' images (the prebuilt stage's is as big as the
  // binary) untagged: those that appear during the build go at the end.
  const untagged = () =>
    run('podman', ['images', '--all', '--quiet', '--no-trunc', '--filter=dangling=true']).split('\n')
  const untaggedBefore = new Set(untagged())
  t.teardown(() => {
    const leftovers = untagged().filter((id) => id && !untaggedBefore.has(id))
    if (leftovers.length > 0) spawnSync('podman', ['rmi', '--force', ...leftovers])
  })
  const started = performance.now()
  const build = spawnSync(
    'podman',
    [
      'build',
      '--pull=never',
      '--format=docker', // HEALTHCHECK is not part of the OCI image format
      `--build-arg=BASE=${BASE_IMAGE}`,
      '--build-arg=BINARY=prebuilt',
      '--build-arg=SOURCE_URL=https://example.com/latchkey.git',
      `--tag=${IMAGE}`,
      ROOT,
    ],
    { encoding: 'utf8' },
  )
  if (build.status !== 0) {
    t.fail('podman build', { output: `${build.stdout}${build.stderr}` })
    return
  }
  const buildSeconds = (performance.now() - started) / 1000
  t.teardown(() => {
    spawnSync('podman', ['image', 'unmount', IMAGE])
    spawnSync('podman', ['rmi', '--force', IMAGE])
  })
  const [inspected] = JSON.parse(run('podman', ['image', 'inspect', IMAGE])) as [
    { Size: number; Config: ImageConfig; Healthcheck?: { Test: string[] } },
  ]
  const config = inspected.Config
  const env = Object.fromEntries(
    config.Env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  )
  const imageRoot = run('podman', ['image', 'mount', IMAGE]).trim()

  await t.test('what the image declares', async (t) => {
    t.same(config.Entrypoint, [ENTRYPOINT], 'entrypoint: the binary')
    t.same(config.Cmd, ['serve'], 'command: serve')
    t.equal(config.User, `${USER}:${USER}`, 'user 65532:65532')
    t.equal(config.WorkingDir, '/', 'working directory /')
    t.same(Object.keys(config.ExposedPorts ?? {}), ['3000/tcp'], 'exposes 3000')
    t.same(Object.keys(config.Volumes ?? {}), ['/data'], 'one volume, /data')
    t.equal(config.StopSignal, 'SIGTERM', 'stops on SIGTERM')
    t.same(inspected.Healthcheck?.Test, ['CMD', ENTRYPOINT, 'healthcheck'], 'health check: the binary asks /ready')
    t.match(env, { HOST: '0.0.0.0', PORT: '3000', DATA_DIR: '/data', LATCHKEY_NATIVE_CACHE_DIR: '/data/native-cache' })
    t.same(
      Object.keys(env).filter((name) => /(^|_)(SECRET|KEY|PASSWORD|TOKEN)(_|$)|^(DATABASE|REDIS|SMTP)_URL$/.test(name)),
      [],
      'no secret or credential in the environment it declares',
    )
    t.match(
      config.Labels,
      {
        'org.opencontainers.image.version': pkg.version,
        'org.opencontainers.image.licenses': pkg.license,
        'org.opencontainers.image.source': 'https://example.com/latchkey.git',
        'org.opencontainers.image.title': 'latchkey',
      },
      'OCI labels: version and licence of package.json, source as given',
    )
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
    t.equal(
      /^ARG NODE_VERSION=(.+)$/m.exec(dockerfile)?.[1],
      readFileSync(path.join(ROOT, '.nvmrc'), 'utf8').trim(),
      "the source stage's Node is .nvmrc's",
    )
    t.equal(/^ARG VERSION=(.+)$/m.exec(dockerfile)?.[1], pkg.version, "the Dockerfile's VERSION is package.json's")
  })

  await t.test('its filesystem: the binary, no shell, nothing its user can write outside /data', async (t) => {
    const entry = lstatSync(path.join(imageRoot, ENTRYPOINT))
    t.ok(entry.isFile(), 'the entrypoint is a file in the image')
    t.equal(entry.uid, 0, "root's")
    t.equal(entry.mode & 0o7777, 0o555, 'read and execute only')
    t.equal(entry.size, binary.bytes, 'the binary just built')
    for (const program of ['sh', 'bash', 'dash', 'busybox', 'apt', 'apt-get', 'dpkg', 'curl', 'wget']) {
      t.notOk(
        ['/bin', '/usr/bin', '/sbin', '/usr/sbin', '/usr/local/bin'].some((dir) =>
          existsSync(path.join(imageRoot, dir, program)),
        ),
        `no ${program}`,
      )
    }
    const data = lstatSync(path.join(imageRoot, 'data'))
    t.ok(data.isDirectory(), '/data is a directory')
    t.same([data.uid, data.gid, data.mode & 0o7777], [USER, USER, 0o700], '/data is 65532:65532, 0700')
    t.same(readdirSync(path.join(imageRoot, 'data')), [], '/data is empty')
    const writable: string[] = []
    const setId: string[] = []
    let files = 0
    walk(imageRoot, (relative, stat) => {
      files++
      if (!stat.isDirectory() && (stat.mode & 0o6000) !== 0) setId.push(relative)
      if (relative === '/data' || relative.startsWith('/data/') || stat.isSymbolicLink()) return
      if (writableBy(stat, USER, USER))
        writable.push(`${relative} ${stat.uid}:${stat.gid} ${(stat.mode & 0o7777).toString(8)}`)
    })
    t.same(writable, [], `none of its ${files} files and directories outside /data is writable by 65532`)
    t.same(setId, [], 'no setuid or setgid program')
  })

  await t.test('no secret in any layer', async (t) => {
    const dir = tempDir(t, 'latchkey-image-layers-')
    run('podman', ['save', '--format=docker-dir', `--output=${path.join(dir, 'image')}`, IMAGE])
    const manifest = JSON.parse(readFileSync(path.join(dir, 'image', 'manifest.json'), 'utf8')) as {
      config: { digest: string }
      layers: { digest: string }[]
    }
    const blob = (digest: string) => path.join(dir, 'image', digest.replace(/^sha256:/, ''))
    const secrets = knownSecrets()
    const imageConfig = readFileSync(blob(manifest.config.digest), 'utf8')
    for (const [index, secret] of secrets.entries()) {
      t.notOk(imageConfig.includes(secret), `known secret ${index + 1} is not in the configuration or history`)
    }
    t.ok(manifest.layers.length >= 2, `${manifest.layers.length} layers`)
    for (const [index, layer] of manifest.layers.entries()) {
      const name = `layer ${index + 1}`
      const entries = run('tar', ['-tf', blob(layer.digest)])
        .split('\n')
        .filter(Boolean)
        .map((entry) => entry.replace(/\/$/, ''))
      t.same(
        entries.filter((entry) => SECRET_FILE.test(entry)),
        [],
        `${name} (${entries.length} entries): no .env, secrets.json, database, key file, .git or node_modules`,
      )
      const bytes = readFileSync(blob(layer.digest))
      const found = secrets.map((secret, i) => (bytes.includes(secret) ? i + 1 : 0)).filter(Boolean)
      t.same(found, [], `${name}: none of the ${secrets.length} known secrets`)
      t.notOk(PRIVATE_KEY.test(bytes.toString('latin1')), `${name}: no PEM private key`)
    }
    // .dockerignore: the context podman sends, with secrets planted where a
    // checkout may have them, holds none of them, and what the source stage needs.
    const context = path.join(dir, 'context')
    mkdirSync(context)
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'Dockerfile', '.dockerignore']) {
      copyFileSync(path.join(ROOT, entry), path.join(context, entry))
    }
    for (const folder of ['src', 'routes', 'plugins', 'migrations', 'public', 'scripts', 'deploy']) {
      cpSync(path.join(ROOT, folder), path.join(context, folder), { recursive: true })
    }
    mkdirSync(path.join(context, 'dist'))
    copyFileSync(binary.file, path.join(context, 'dist', 'latchkey'))
    const planted = [
      '.env',
      'deploy/.env',
      'data/secrets.json',
      'data/latchkey.db',
      'data/latchkey.db-wal',
      'src/.env',
      'src/.env.local',
      'deploy/image/data-volume/data/.env',
      'deploy/image/data-volume/data/secrets.json',
      'public/latchkey.db',
      'scripts/secrets.json',
      'dist/latchkey.cjs',
      'node_modules/some-package/index.js',
      'src/node_modules/x.js',
      '.git/config',
      'test/helper.ts',
      'bench/seed.mjs',
      'README.md',
    ]
    for (const file of planted) {
      mkdirSync(path.dirname(path.join(context, file)), { recursive: true })
      writeFileSync(path.join(context, file), 'planted\n')
    }
    const dumper = path.join(dir, 'context.Dockerfile')
    writeFileSync(dumper, 'FROM scratch\nCOPY . /context\n')
    const contextImage = `localhost/latchkey-context:test-${process.pid}`
    run('podman', ['build', '--pull=never', `--file=${dumper}`, `--tag=${contextImage}`, context])
    try {
      const sent = path.join(run('podman', ['image', 'mount', contextImage]).trim(), 'context')
      const sentFiles: string[] = []
      const sentFolders: string[] = []
      walk(sent, (relative, stat) => {
        if (relative !== '/') (stat.isDirectory() ? sentFolders : sentFiles).push(relative.slice(1))
      })
      t.same(
        planted.filter((file) => sentFiles.includes(file)),
        [],
        '.dockerignore keeps every planted secret, database and folder out of the build context',
      )
      t.same(
        readdirSync(sent).sort(),
        [
          'deploy',
          'dist',
          'migrations',
          'package-lock.json',
          'package.json',
          'plugins',
          'public',
          'routes',
          'scripts',
          'src',
          'tsconfig.json',
        ],
        'the context: the source stage inputs, dist/latchkey and deploy/image',
      )
      t.same(
        sentFiles.filter((file) => /^(dist|deploy)\//.test(file)),
        ['dist/latchkey'],
        'of dist/, the binary alone; of deploy/, no file',
      )
      t.same(
        sentFolders.filter((folder) => folder.startsWith('deploy/') && !folder.startsWith('deploy/image')),
        [],
        'of deploy/, the folders of deploy/image alone',
      )
    } finally {
      spawnSync('podman', ['image', 'unmount', contextImage])
      spawnSync('podman', ['rmi', '--force', contextImage])
    }
  })

  await t.test('its size', async (t) => {
    const added = inspected.Size - binary.bytes
    t.ok(added < BASE_BUDGET, `the image adds ${mib(added)} to the binary (at most ${mib(BASE_BUDGET)})`)
    t.comment(
      `image ${mib(inspected.Size)}: binary ${mib(binary.bytes)}, base and the rest ${mib(added)}; built in ${buildSeconds.toFixed(1)} s`,
    )
  })

  await t.test("its entrypoint, as its user on its read-only filesystem, passes the binary's smoke test", async (t) => {
    const dataDir = tempDir(t, 'latchkey-container-data-')
    // As Docker makes a named volume from the image's /data.
    chownSync(dataDir, USER, USER)
    chmodSync(dataDir, 0o700)
    const root = containerRoot(t, imageRoot, dataDir)
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    // The image's environment as a runtime gives it (HOME from its passwd),
    // a port of this machine's that is free, and loopback only (the image's
    // HOST=0.0.0.0 would listen on every interface of this machine).
    const containerEnv = {
      ...env,
      HOME: '/home/nonroot',
      HOSTNAME: 'latchkey-test',
      PORT: String(port),
      HOST: '127.0.0.1',
      COOKIE_SECURE: 'false',
      ARGON2_MEMORY_KIB: '1024',
      ARGON2_TIME_COST: '1',
    }
    const chroot = (command: string[]): [string, string[]] => [
      'chroot',
      [`--userspec=${config.User}`, root, ...command],
    ]
    const inContainer = (command: string[]): SpawnSyncReturns<string> => {
      const [program, args] = chroot(command)
      return spawnSync(program, args, { env: containerEnv, encoding: 'utf8', timeout: 30_000 })
    }
    const healthcheck = () => inContainer([...(inspected.Healthcheck?.Test.slice(1) ?? []), `${url}/ready`])

    async function start(): Promise<Running> {
      let output = ''
      const [program, args] = chroot([...config.Entrypoint, ...config.Cmd])
      const child = spawn(program, args, { env: containerEnv, stdio: ['ignore', 'pipe', 'pipe'] })
      child.stdout?.on('data', (chunk) => (output += chunk))
      child.stderr?.on('data', (chunk) => (output += chunk))
      t.teardown(() => child.kill('SIGKILL'))
      const began = Date.now()
      while (Date.now() - began < 60_000) {
        if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before it was ready:\n${output}`)
        const ready = await fetch(`${url}/ready`).catch(() => undefined)
        if (ready?.status === 200) return { child, url, output: () => output }
        await sleep(20)
      }
      throw new Error(`not ready within 60 s:\n${output}`)
    }
    const stop = (running: Running) =>
      new Promise<number | null>((resolve) => {
        running.child.once('exit', (code) => resolve(code))
        running.child.kill(config.StopSignal as NodeJS.Signals)
      })
    /** Log lines at warn level or above (JSON lines, pino levels). */
    const warnings = (running: Running) =>
      running
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{') && (JSON.parse(line) as { level: number }).level >= 40)

    const version = inContainer([ENTRYPOINT, '--version'])
    t.equal(version.stdout, `${pkg.version}\n`, '--version: the version of the label', { stderr: version.stderr })

    const first = await start()
    const status = readFileSync(`/proc/${first.child.pid}/status`, 'utf8')
    t.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m, 'runs as uid 65532')
    t.match(status, /^Gid:\s+65532\s+65532\s+65532\s+65532$/m, 'and gid 65532')
    t.match(status, /^Groups:\s*(65532\s*)?$/m, 'with no other group')
    t.match(status, /^CapEff:\s+0+$/m, 'and no capability')

    const check = healthcheck()
    t.equal(check.status, 0, "the image's health check passes", { stdout: check.stdout, stderr: check.stderr })

    const email = `container-${process.pid}@example.com`
    const signup = await call(`${url}/auth/signup`, 'POST', { email, password: PASSWORD })
    t.equal(signup.status, 201, 'signs up', { body: signup.text })
    const refresh = await call(`${url}/auth/refresh`, 'POST', undefined, {
      cookie: `refresh_token=${cookiesOf(signup.response).refresh_token}`,
    })
    t.equal(refresh.status, 200, 'refreshes with the refresh_token cookie', { body: refresh.text })
    const refreshed = { authorization: `Bearer ${refresh.json().accessToken}` }
    const task = await call(`${url}/tasks`, 'POST', { title: 'run in a container' }, refreshed)
    t.equal(task.status, 201, 'creates a task', { body: task.text })
    const logout = await call(`${url}/auth/logout`, 'POST', undefined, refreshed)
    t.equal(logout.status, 204, 'logs out', { body: logout.text })
    t.equal((await call(`${url}/users/me`, 'GET', undefined, refreshed)).status, 401, 'that token is refused now')
    const again = await call(`${url}/auth/refresh`, 'POST', undefined, {
      cookie: `refresh_token=${cookiesOf(refresh.response).refresh_token}`,
    })
    t.equal(again.status, 401, 'and its refresh token too', { body: again.text })
    const login = await call(`${url}/auth/login`, 'POST', { email, password: PASSWORD })
    t.equal(login.status, 200, 'logs in again', { body: login.text })
    const bearer = { authorization: `Bearer ${login.json().accessToken}` }

    t.equal(await stop(first), 0, 'exits 0 on its stop signal', { output: first.output() })
    t.same(warnings(first), [], 'no warning (a data directory open to others, ...)')
    const stopped = healthcheck()
    t.equal(stopped.status, 1, 'the health check fails when nothing answers', { stderr: stopped.stderr })

    const files: string[] = []
    walk(dataDir, (relative, stat) => {
      if (relative !== '/' && !stat.isSymbolicLink() && stat.uid !== USER) files.push(relative)
    })
    t.same(files, [], "everything in the volume is the user's")
    t.equal(statSync(path.join(dataDir, 'secrets.json')).mode & 0o777, 0o600, 'generated secrets, 0600')
    t.ok(existsSync(path.join(dataDir, 'latchkey.db')), 'the database in the volume')
    t.ok(existsSync(path.join(dataDir, 'native-cache')), 'the unpacked addons in the volume')

    const second = await start()
    const me = await call(`${url}/users/me`, 'GET', undefined, bearer)
    t.equal(me.status, 200, 'after a restart, the access token is still valid', { body: me.text })
    t.equal(me.json().user.email, email, 'the user is still there')
    const tasks = await call(`${url}/tasks`, 'GET', undefined, bearer)
    t.ok(
      (tasks.json().items as { id: string }[]).some((item) => item.id === task.json().task.id),
      'the task is still there',
      { body: tasks.text },
    )
    t.equal((await call(`${url}/auth/login`, 'POST', { email, password: PASSWORD })).status, 200, 'logs in')
    t.equal(await stop(second), 0, 'exits 0 again', { output: second.output() })
    t.same(warnings(second), [], 'no warning')
  })
})
