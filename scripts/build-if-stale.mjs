// `npm start`'s first step: build dist/ only when a source changed since the
// last build (or the node version did), so a restart starts in well under a
// second. Before a build it checks the configuration, so that a bad value
// (`PORT=abc npm start`) is reported at once, not after a build.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { isFresh } from './build-stamp.mjs'

if (!isFresh()) {
  const tsx = ['--import', 'tsx']
  const check = spawnSync(process.execPath, [...tsx, path.join(import.meta.dirname, 'check-config.ts')], {
    stdio: 'inherit',
  })
  if (check.status !== 0) process.exit(check.status ?? 1)
  process.stderr.write('latchkey: building dist/ (sources changed since the last build)...\n')
  const build = spawnSync(process.execPath, [...tsx, path.join(import.meta.dirname, 'build.ts')], { stdio: 'inherit' })
  if (build.status !== 0) process.exit(build.status ?? 1)
}
