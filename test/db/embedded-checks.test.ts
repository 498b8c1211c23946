import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { clusterMajor, embeddedBinaries, embeddedStartProblem, firstBlockedFolder, portInUse, postgresUser, runningServerPort } from '../../src/db/embedded-checks.js'
import { freePort } from '../../src/lib/child-process.js'

// What stops the embedded server, found before it starts: each problem is one sentence naming the cause and the fix.

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'embedded-checks-'))
  t.teardown(() => { chmodSync(dir, 0o700); rmSync(dir, { recursive: true, force: true }) })
  return dir
}

t.test('the first folder a user cannot enter, by owner, group or others', async (t) => {
  const dir = tempDir(t)
  chmodSync(dir, 0o755)
  const inner = path.join(dir, 'a', 'b')
  mkdirSync(inner, { recursive: true })
  chmodSync(path.join(dir, 'a'), 0o750)
  const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
  const stranger = { uid: 54_321, gid: 54_321 }
  t.equal(firstBlockedFolder(path.join(inner, 'data'), me), undefined, 'the owner gets through 750')
  t.equal(firstBlockedFolder(path.join(inner, 'data'), { uid: 54_321, gid: me.gid }), undefined, 'so does its group')
  t.strictSame(firstBlockedFolder(path.join(inner, 'data'), stranger), { folder: path.join(dir, 'a'), mode: '750' }, 'others do not')
  t.strictSame(firstBlockedFolder(inner, undefined), { folder: path.join(dir, 'a'), mode: '750' }, 'no such user yet: others\' bits decide')
  chmodSync(path.join(dir, 'a'), 0o751)
  t.equal(firstBlockedFolder(path.join(inner, 'not', 'yet'), stranger), undefined, 'folders not created yet are not in the way')
})

t.test('the postgres user from a passwd file', async (t) => {
  const dir = tempDir(t)
  const passwd = path.join(dir, 'passwd')
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104:PostgreSQL:/var/lib/postgresql:/bin/bash\n')
  t.strictSame(postgresUser(passwd), { uid: 101, gid: 104 })
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n')
  t.equal(postgresUser(passwd), undefined)
  t.equal(postgresUser(path.join(dir, 'none')), undefined)
})

t.test('each problem as one sentence', async (t) => {
  const { binDir, major } = await embeddedBinaries()
  t.ok(major >= 15, `the embedded binaries are PostgreSQL ${major}`)
  const dir = tempDir(t)
  chmodSync(dir, 0o755)
  const port = await freePort()
  const base = { dataDir: path.join(dir, 'data'), port, binDir, major, asRoot: false }
  t.equal(await embeddedStartProblem(base), undefined, 'nothing in the way')

  mkdirSync(base.dataDir)
  writeFileSync(path.join(base.dataDir, 'PG_VERSION'), `${major - 2}\n`)
  t.equal(clusterMajor(base.dataDir), major - 2)
  const version = await embeddedStartProblem(base)
  t.match(version, new RegExp(`holds a PostgreSQL ${major - 2} database but the embedded server is PostgreSQL ${major}: move that folder away`))
  writeFileSync(path.join(base.dataDir, 'PG_VERSION'), `${major}\n`)
  t.equal(await embeddedStartProblem(base), undefined, 'its own version is fine')

  const listener = createServer()
  await new Promise<void>((resolve) => listener.listen(port, '127.0.0.1', resolve))
  t.teardown(() => listener.close())
  t.equal(await portInUse(port), true)
  t.match(await embeddedStartProblem(base), new RegExp(`^Port ${port} on 127.0.0.1 is already in use.*set EMBEDDED_PG_PORT`))

  const privateDir = path.join(dir, 'private')
  mkdirSync(privateDir, { mode: 0o700 })
  chmodSync(privateDir, 0o700)
  // binDir in an open folder, so that the data folder is what is in the way (this checkout itself
  // may be in a private folder).
  const asRoot = await embeddedStartProblem({ ...base, binDir: dir, port: await freePort(), dataDir: path.join(privateDir, 'data'), asRoot: true })
  const postgres = postgresUser()
  if (postgres === undefined || postgres.uid !== process.getuid?.()) {
    t.match(asRoot, new RegExp(`the "postgres" user, which cannot enter ${privateDir} \\(mode 700\\) on the way to its data folder: let it through \\(chmod o\\+x ${privateDir}\\)`))
  }
  for (const sentence of [version, asRoot]) t.notMatch(String(sentence), /\n/, 'one line')
})

t.test('a server already running on a data folder is found by its postmaster.pid', async (t) => {
  const dir = tempDir(t)
  t.equal(runningServerPort(dir), undefined, 'no postmaster.pid')
  const pidFile = path.join(dir, 'postmaster.pid')
  writeFileSync(pidFile, `${process.pid}\n${dir}\n1796000000\n54321\n/tmp\n127.0.0.1\n`)
  t.equal(runningServerPort(dir), 54321, 'a live process: its port')
  writeFileSync(pidFile, `2147483646\n${dir}\n1796000000\n54321\n`)
  t.equal(runningServerPort(dir), undefined, 'a dead process left it behind')
  writeFileSync(pidFile, 'garbage\n')
  t.equal(runningServerPort(dir), undefined, 'unreadable')
})
