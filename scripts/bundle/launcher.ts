// dist/latchkey.cjs (scripts/build.ts), the command `npm start` runs and the
// package's bin: it runs the server's bundle, dist/app.cjs, with the V8 code
// cache that the build wrote after a warm-up start of that bundle
// (dist/app.cjs.cache, see code-cache.ts). With it, V8 skips compiling what
// start-up runs, most of a cold start. V8 takes the cache only on the same node
// version with the same V8 flags (those of `npm start`) and otherwise compiles
// as usual. With LATCHKEY_WRITE_CODE_CACHE=1 (the build's warm-up run), it
// writes that cache as the process exits.
import path from 'node:path'
import { loadWithCodeCache } from './code-cache.js'

const file = path.join(__dirname, 'app.cjs')
const writeCache = process.env.LATCHKEY_WRITE_CODE_CACHE === '1'
const app = loadWithCodeCache(file, `${file}.cache`, { ignoreCache: writeCache })
if (writeCache) process.once('exit', () => app.writeCache())
app.run()
