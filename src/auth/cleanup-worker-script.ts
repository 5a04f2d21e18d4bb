// The code a cleanup worker thread runs (`new Worker(code, { eval: true })`):
// here, an import of ./cleanup-worker.ts beside this module, through tsx, which
// the worker registers itself: Node 20 does not apply the `--import=tsx` a worker
// inherits to what the worker loads. The bundles have no source tree; their
// builds replace this module (scripts/bundle/cleanup-worker-script.ts for
// dist/app.cjs, scripts/binary/cleanup-worker-script.ts for the single binary).
export interface WorkerScript {
  /** JavaScript for `new Worker(code, { eval: true })`. */
  code: string
  /** Added to the worker's `workerData`. */
  workerData?: Record<string, unknown>
}

export function cleanupWorkerScript(): WorkerScript {
  const entry = JSON.stringify(new URL('./cleanup-worker.ts', import.meta.url).href)
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'))
  return { code: `import(${tsx}).then((tsx) => tsx.register()).then(() => import(${entry}))` }
}
