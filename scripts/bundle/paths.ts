// Run-time side of dist/app.cjs and dist/cleanup-worker.cjs (scripts/build.ts):
// the repository is the folder above the bundle's own, dist/, so each bundled
// module finds its files (public/, package.json, Swagger UI's assets) where they
// are in the repository, as it does when run from source.
import path from 'node:path'
import { pathToFileURL } from 'node:url'

/** The repository root. `__dirname` is that of the bundle this module is part of: dist/. */
const root = path.resolve(__dirname, '..')

/** The file or directory at `relative` in the repository. */
export function bundledPath(relative: string): string {
  return path.join(root, ...relative.split('/'))
}

/** What `import.meta` holds for the repository file `relative`. */
export function bundledImportMeta(relative: string): { url: string; filename: string; dirname: string } {
  const filename = bundledPath(relative)
  return { url: pathToFileURL(filename).href, filename, dirname: path.dirname(filename) }
}
