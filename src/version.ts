// The package version, read once from package.json.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const pkg = require('../package.json') as { version: string; name: string }

export const version: string = pkg.version
