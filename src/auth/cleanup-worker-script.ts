// The code a cleanup worker thread runs (`new Worker(code, { eval: true })`):
// here, an import of ./cleanup-worker beside this module, `.js` under dist/.
// When the sources run through tsx (tests), it is `.ts`, and the worker first
// registers tsx itself: Node 20 does not apply the `--import=tsx` a worker
// inherits to what the worker loads. The single binary has no source tree; its
// build replaces this module with scripts/binary/cleanup-worker-script.ts.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface WorkerScript {
  /** JavaScript for `new Worker(code, { eval: true })`. */
  code: string
  /** Added to the worker's `workerData`. */
  workerData?: Record<string, unknown>
}

export function cleanupWorkerScript(): WorkerScript {
  const extension = path.extname(fileURLToPath(import.meta.url))
  const entry = JSON.stringify(new URL(`./cleanup-worker${extension}`, import.meta.url).href)
  if (extension !== '.ts') return { code: `import(${entry})` }
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'))
  return { code: `import(${tsx}).then((tsx) => tsx.register()).then(() => import(${entry}))` }
}
