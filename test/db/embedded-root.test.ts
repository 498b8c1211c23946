// As root, the embedded server runs as the postgres user; started from a private folder (a clone
// under /root, any mktemp -d), its binaries and data are placed where that user can reach them.
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import t from 'tap'
import { firstBlockedFolder, postgresUser } from '../../src/db/embedded-checks.js'
import { EmbeddedStartError, prepareForPostgresUser, startEmbeddedPostgres } from '../../src/db/embedded.js'
import { installedPackageDir, pathsForPostgresUser } from '../../src/db/embedded-runtime.js'
import { freePort } from '../../src/lib/child-process.js'

const asRoot = process.getuid?.() === 0

function tempDir (t: { teardown: (fn: () => void) => void }, mode: number): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'embedded-root-'))
  chmodSync(dir, mode)
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

t.test('not as root, nothing moves', async (t) => {
  const dir = tempDir(t, 0o700)
  const paths = pathsForPostgresUser({ dataDir: path.join(dir, 'data'), runtimeDir: path.join(dir, 'runtime'), asRoot: false })
  t.strictSame(paths, { packageDir: installedPackageDir(), dataDir: path.join(dir, 'data'), binariesMoved: false, dataMoved: false })
  t.notOk(existsSync(path.join(dir, 'runtime')), 'no runtime folder made')
})

t.test('as root in a folder open to the postgres user, nothing moves either', async (t) => {
  const dir = tempDir(t, 0o755)
  const paths = pathsForPostgresUser({ dataDir: path.join(dir, 'data'), runtimeDir: path.join(dir, 'runtime'), asRoot: true })
  t.match(paths, { dataDir: path.join(dir, 'data'), dataMoved: false })
  // The binaries move only when this checkout itself is out of the postgres user's reach.
  const checkoutBlocked = firstBlockedFolder(path.join(installedPackageDir(), 'native', 'bin'), postgresUser()) !== undefined
  t.equal(paths.binariesMoved, checkoutBlocked, `binaries moved: ${String(checkoutBlocked)}`)
})

t.test('a runtime folder others may write in is refused with one sentence', async (t) => {
  const dir = tempDir(t, 0o700)
  const runtime = path.join(tempDir(t, 0o755), 'runtime')
  mkdirSync(runtime)
  chmodSync(runtime, 0o777)
  const prepare = () => prepareForPostgresUser({ dataDir: path.join(dir, 'data'), runtimeDir: runtime })
  if (asRoot) {
    t.throws(prepare, new EmbeddedStartError(`${runtime} must be owned by root and writable only by it (it holds the PostgreSQL binaries the postgres user runs): fix it with chown root ${runtime} && chmod 755 ${runtime}, or set DATABASE_URL.`))
  } else {
    t.equal(prepare(), path.join(dir, 'data'), 'not root: the folder is not used at all')
  }
})

t.test('as root from a private folder, the server starts with its binaries and data moved where the postgres user reaches them', async (t) => {
  if (!asRoot) {
    // Not root: PostgreSQL runs as this user, which reaches its own private folder.
    t.equal(process.getuid?.() === 0, false)
    return
  }
  const home = tempDir(t, 0o700)
  // The checkout's node_modules, in a folder only root may enter.
  const packageDir = path.join(home, 'node_modules', 'platform')
  cpSync(installedPackageDir(), packageDir, { recursive: true, verbatimSymlinks: true })
  const runtime = path.join(tempDir(t, 0o755), 'runtime')
  const dataDir = path.join(home, '.data', 'postgres')
  const announced: string[] = []
  const port = await freePort()
  const start = async () => await startEmbeddedPostgres({ dataDir, port, database: 'logs', packageDir, runtimeDir: runtime, announce: (line) => announced.push(line) })

  const server = await start()
  t.teardown(() => server.stop())
  t.ok(server.dataDir.startsWith(path.join(runtime, 'data') + path.sep), `the data is in ${server.dataDir}`)
  t.match(announced.join('\n'), new RegExp(`cannot reach ${dataDir}, so the data is kept in ${server.dataDir}`))
  t.match(announced.join('\n'), /runs a copy of the PostgreSQL binaries in .*embedded-postgres-/)
  const client = new pg.Client({ connectionString: server.url })
  await client.connect()
  const { rows: [row] } = await client.query<{ user: string }>('select current_user as user')
  await client.end()
  t.equal(row?.user, 'postgres', 'it answers')

  const postgres = postgresUser()
  t.equal(statSync(server.dataDir).uid, postgres?.uid, 'the postgres user owns the data folder')
  t.equal(statSync(runtime).uid, 0, 'root owns the runtime folder')
  t.equal(statSync(runtime).mode & 0o777, 0o755)
  t.equal(statSync(home).mode & 0o777, 0o700, 'the private folder was left private')
  t.notOk(existsSync(dataDir), 'nothing was written in it')

  const beside = await startEmbeddedPostgres({ dataDir, port: await freePort(), database: 'other', packageDir, runtimeDir: runtime, announce: (line) => announced.push(line) })
  t.equal(beside.url, server.url.replace(/\/logs$/, '/other'), 'a second process on the same data uses the running server, on its port')
  t.match(announced.join('\n'), new RegExp(`is already running \\(port ${port}\\): using it`))
  await beside.stop()
  const still = new pg.Client({ connectionString: server.url })
  await still.connect()
  await still.end()
  t.pass('and leaves it running when it is done')

  await server.stop()
  const again = await start()
  t.equal(again.dataDir, server.dataDir, 'the next start finds the same data')
  await again.stop()
})
