// The cleanup worker thread in the single binary. The build bundles it on its
// own and carries the bundle as a SEA asset, which ./cleanup-worker-script.ts
// runs with `new Worker(code, { eval: true })`: no file of it is ever read from
// disk. Its better-sqlite3 addon is the one the main thread unpacked and
// verified, loaded by the same name (the main thread's open descriptor of it);
// then it is the same worker as everywhere else.
import { workerData } from 'node:worker_threads'
import { useUnpackedFiles } from './embedded.js'

useUnpackedFiles((workerData as { embedded: Parameters<typeof useUnpackedFiles>[0] }).embedded)

// Imported only now, as in main.ts: bundled modules find their files under that
// directory as they load.
import('../../src/auth/cleanup-worker.js')
