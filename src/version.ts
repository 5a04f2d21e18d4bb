// The package version, read once from package.json.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const pkg = (() => {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      return require(candidate) as { version: string; name: string }
    } catch {}
  }
  return { version: '0.0.0', name: 'latchkey' }
})()

export const version: string = pkg.version
