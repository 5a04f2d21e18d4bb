// Reads the configuration as `latchkey serve` would and reports a bad value in
// the same one line, before `npm start` spends time on a build.
import { ConfigError, loadConfig } from '../src/config.js'

try {
  loadConfig()
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  process.stderr.write(`latchkey: invalid configuration: ${error.message}\n`)
  process.exit(1)
}
