import { mkdtempSync, chmodSync, rmSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Kysely, PostgresDialect } from 'kysely'
import { ensureRootUser } from '../src/bootstrap.js'
import { createPool } from '../src/db/pool.js'
import type { Database } from '../src/db/types.js'
import { freePort, startNodeChild, type NodeChild } from '../src/lib/child-process.js'
import { createTestDatabase } from './helpers/app.js'

const serverEntry = path.join(import.meta.dirname, '..', 'src', 'server.ts')

/** `npm start`'s command, with only the given environment, until a line matching `ready` appears. */
async function startServer (env: Record<string, string>, ready: RegExp): Promise<NodeChild> {
  const server = startNodeChild(serverEntry, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } })
  await server.waitForOutput(ready)
  return server
}

t.test('a bad configuration value stops the service with a message naming it', async (t) => {
  const started = await startServer({ PORT: 'abc', DATABASE_URL: 'postgres://127.0.0.1:1/x' }, /invalid configuration/)
  t.equal(await started.exited, 1)
  t.match(started.output(), /PORT/)
})

t.test('with DATABASE_URL: migrates, creates the root user once, prints how to call the API, serves it', async (t) => {
  const url = await createTestDatabase(t)
  const env = { DATABASE_URL: url, PORT: '0', LOG_LEVEL: 'info' }
  const first = await startServer(env, /Server listening at (http:\/\/[^"\s]+)/)
  t.teardown(first.stop)
  const address = /Server listening at (http:\/\/[^"\s]+)/.exec(first.output())?.[1]
  const curl = /curl -H 'Authorization: Bearer ([^']+)' -H 'New-Api-User: ([0-9]+)'/.exec(first.output())
  t.ok(address, 'listening')
  t.ok(curl, 'the first start prints a curl call with the new token')
  const res = await fetch(`${address}/api/log/`, { headers: { authorization: `Bearer ${curl?.[1]}`, 'new-api-user': curl?.[2] ?? '' } })
  t.equal(res.status, 200, 'the printed call works')
  t.match(await res.json(), { success: true, data: { items: [], total: 0 } })
  // The token is printed once on the console, never through the logger.
  const loggedLines = first.output().split('\n').filter((line) => line.startsWith('{'))
  t.notOk(loggedLines.some((line) => line.includes(curl?.[1] ?? '')), 'the token is in no log line')
  t.equal(await first.stop(), 0, 'SIGTERM shuts down cleanly')

  const second = await startServer(env, /Server listening at/)
  t.teardown(second.stop)
  t.notMatch(second.output(), /Created root user/, 'a restart creates no second root user')
  await second.stop()
})

t.test('without DATABASE_URL: an embedded PostgreSQL keeps its data in a local folder across restarts', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-embedded-'))
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env = {
    PORT: '0',
    EMBEDDED_PG_DIR: path.join(dir, 'pg'),
    EMBEDDED_PG_PORT: String(await freePort()),
    ROOT_ACCESS_TOKEN: 'embedded-test-root-token-0001'
  }
  const first = await startServer(env, /Server listening at|Error/)
  t.teardown(first.stop)
  t.match(first.output(), /starting embedded PostgreSQL/)
  t.match(first.output(), /Created root user/)
  t.notMatch(first.output(), /embedded-test-root-token-0001/, 'a token from the environment is never echoed')
  const address = /Server listening at (http:\/\/[^"\s]+)/.exec(first.output())?.[1]
  const res = await fetch(`${address}/api/log/self`, { headers: { authorization: 'Bearer embedded-test-root-token-0001', 'new-api-user': '1' } })
  t.equal(res.status, 200)
  t.equal(await first.stop(), 0, 'SIGTERM closes the service, then stops the embedded server')
  t.ok(existsSync(path.join(dir, 'pg', 'PG_VERSION')), 'the data folder stays after a stop')

  const second = await startServer(env, /Server listening at|Error/)
  t.teardown(second.stop)
  t.notMatch(second.output(), /Created root user/, 'the data survived the restart')
  await second.stop()
})

t.test('ensureRootUser: only on an empty users table, with the given or a fresh token', async (t) => {
  const pool = createPool({ connectionString: await createTestDatabase(t), max: 2 })
  // The database is dropped (WITH FORCE) before this pool is closed; its idle clients see that.
  pool.on('error', () => {})
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  t.teardown(() => db.destroy())
  const fromEnv = await ensureRootUser(db, 'given-token-of-enough-length')
  t.match(fromEnv, { created: true, userId: Number })
  t.equal(fromEnv.generatedToken, undefined, 'a given token is not handed back for printing')
  const row = await db.selectFrom('users').selectAll().executeTakeFirstOrThrow()
  t.match(row, { username: 'root', role: 100, status: 1, access_token: 'given-token-of-enough-length' })
  t.strictSame(await ensureRootUser(db), { created: false })

  await db.deleteFrom('users').execute()
  const [a, b] = await Promise.all([ensureRootUser(db), ensureRootUser(db)])
  t.equal([a, b].filter((r) => r.created).length, 1, 'two processes starting at once create one root')
  const generated = a.generatedToken ?? b.generatedToken ?? ''
  t.ok(generated.length >= 32, 'a generated token is long and random')
})

t.test('what stops the embedded server stops the service at once, with one sentence and no stack trace', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-embedded-'))
  chmodSync(dir, 0o755)
  t.teardown(() => { chmodSync(dir, 0o755); rmSync(dir, { recursive: true, force: true }) })
  const oldCluster = path.join(dir, 'old')
  mkdirSync(oldCluster)
  writeFileSync(path.join(oldCluster, 'PG_VERSION'), '9\n')
  const busy = createServer()
  const busyPort = await freePort()
  await new Promise<void>((resolve) => busy.listen(busyPort, '127.0.0.1', resolve))
  t.teardown(() => busy.close())
  const privateDir = path.join(dir, 'private')
  mkdirSync(privateDir, { mode: 0o700 })

  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a data folder of another version', { EMBEDDED_PG_DIR: oldCluster }, /holds a PostgreSQL 9 database but the embedded server is PostgreSQL \d+: move that folder away/],
    ['a port in use', { EMBEDDED_PG_DIR: path.join(dir, 'fresh'), EMBEDDED_PG_PORT: String(busyPort) }, new RegExp(`Port ${busyPort} on 127.0.0.1 is already in use`)]
  ]
  // As root the server runs as postgres: a folder only root may enter is in its way.
  if (process.getuid?.() === 0) cases.push(['as root, a private folder', { EMBEDDED_PG_DIR: path.join(privateDir, 'pg') }, /runs as the "postgres" user, which cannot enter .*private \(mode 700\)/])
  for (const [label, env, sentence] of cases) {
    const started = await startServer({ PORT: '0', EMBEDDED_PG_PORT: String(await freePort()), ...env }, /set DATABASE_URL/)
    t.equal(await started.exited, 1, `${label}: exit code 1`)
    t.match(started.output(), sentence, `${label}: the cause and the fix`)
    t.notMatch(started.output(), /^\s+at /m, `${label}: no stack trace`)
  }
})
