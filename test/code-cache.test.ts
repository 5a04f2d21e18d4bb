// The launcher's code cache (scripts/bundle/code-cache.ts): used for the file it
// was made from, never for another, even one of the same length, which V8's own
// check would let through and so run the old code. (Within one process V8 also
// reuses what it compiled before, so only a changed file is a fair test here.)
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { loadWithCodeCache } from '../scripts/bundle/code-cache.js'
import { tempDir } from './helper.js'

const source = (word: string) => `#!/usr/bin/env node
const path = require('node:path')
function greet(name) { return 'hello ' + name }
module.exports = { word: greet(${JSON.stringify(word)}), dir: __dirname, file: __filename, base: path.basename(__filename) }
`

t.test('a cache is used for its own file only', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'app.cjs')
  const cacheFile = `${file}.cache`
  writeFileSync(file, source('first'))
  const warm = loadWithCodeCache(file, cacheFile)
  t.equal(warm.cacheUsed, false, 'no cache yet')
  t.same(warm.run(), { word: 'hello first', dir, file, base: 'app.cjs' }, 'runs as a CommonJS module')
  warm.writeCache()

  const cached = loadWithCodeCache(file, cacheFile)
  t.equal(cached.cacheUsed, true, 'V8 takes the cache for the same file')
  t.same(cached.run(), { word: 'hello first', dir, file, base: 'app.cjs' }, 'and runs the same')
  t.equal(loadWithCodeCache(file, cacheFile, { ignoreCache: true }).cacheUsed, false, 'unless told to ignore it')

  // Edited in place, same length: V8's own check (the source's length) would pass.
  writeFileSync(file, source('other'))
  t.equal(readFileSync(file).length, source('first').length)
  const edited = loadWithCodeCache(file, cacheFile)
  t.equal(edited.cacheUsed, false, 'the cache of the old file is not used')
  t.same((edited.run() as { word: string }).word, 'hello other', 'the edited code runs')
})

t.test('a cache file that is not of this file is ignored', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'app.cjs')
  const cacheFile = `${file}.cache`
  writeFileSync(file, source('first'))
  for (const [what, content] of [
    ['empty', Buffer.alloc(0)],
    ['shorter than a digest', Buffer.from('not a cache')],
    ['garbage', Buffer.alloc(4096, 7)],
  ] as const) {
    writeFileSync(cacheFile, content)
    const loaded = loadWithCodeCache(file, cacheFile)
    t.equal(loaded.cacheUsed, false, `${what}: not used`)
    t.same((loaded.run() as { word: string }).word, 'hello first', `${what}: the file runs as usual`)
  }
})
