import { mkdtempSync, chmodSync, rmSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
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

t.test('SIGTERM with a slow request and a purge in flight: the request completes, the purge stops at a batch boundary, everything closes, exit 0', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-shutdown-'))
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pgPort = await freePort()
  const token = 'shutdown-test-root-token-0001'
  // Row by row in small batches, so that the purge is long and has many boundaries: 4,000 rows one
  // second apart, a purge toward the 3,000th, which waits on the 2,000th.
  const ROWS = 4000
  const LOCKED = 2000
  const TARGET = 3000
  const env = { PORT: '0', EMBEDDED_PG_DIR: path.join(dir, 'pg'), EMBEDDED_PG_PORT: String(pgPort), ROOT_ACCESS_TOKEN: token, PURGE_BATCH_SIZE: '50', PURGE_UNIT_MAX_ROWS: '0', AUTH_CACHE_TTL_MS: '0', LOG_LEVEL: 'info', STAT_FOLD_INTERVAL_MS: '0' }
  const headers = { authorization: `Bearer ${token}`, 'new-api-user': '1' }
  const first = await startServer(env, /Server listening at|Error/)
  t.teardown(first.stop)
  const address = /Server listening at (http:\/\/[^"\s]+)/.exec(first.output())?.[1]
  t.ok(address, 'listening')

  const db = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/logs` })
  // The service stops its embedded server as it exits, which ends this session.
  db.on('error', () => {})
  await db.connect()
  const T = 1_700_000_000
  await db.query(`insert into logs (user_id, created_at, type, quota) select 1, ${T} + i, 2, 1 from generate_series(0, ${ROWS - 1}) i`)

  // Held by this test: a row in the middle of the purge's range, then the users table, which the
  // slow request's user lookup reads. Both requests end up waiting in the database. Watched from
  // another session: inside a transaction, pg_stat_activity is read once and kept.
  const observer = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/logs` })
  await observer.connect()
  // Blocked by this test's session in particular, not by a moment's wait on the stat fold.
  const holder = (await db.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid
  const waitingInDatabase = async (n: number) => {
    let waiting = 0
    for (let i = 0; i < 1000 && waiting < n; i++) {
      await sleep(10)
      waiting = Number((await observer.query<{ n: string }>(
        "select count(*) as n from pg_stat_activity where application_name = 'log-service' and $1 = any(pg_blocking_pids(pid))", [holder]
      )).rows[0]?.n)
    }
    return waiting
  }
  await db.query('begin')
  await db.query(`select id from logs where created_at = ${T + LOCKED} for update`)
  const purge = fetch(`${address}/api/log/?target_timestamp=${T + TARGET}`, { method: 'DELETE', headers })
  t.equal(await waitingInDatabase(1), 1, 'the purge is waiting on the locked row')
  await db.query('lock table users in access exclusive mode')
  const slow = fetch(`${address}/api/log/self`, { headers })
  t.equal(await waitingInDatabase(2), 2, 'the slow request is waiting too')
  await observer.end()

  const exited = first.exited
  process.kill(first.pid, 'SIGTERM')
  await first.waitForOutput(/"msg":"shutting down"/)
  t.equal(first.status(), null, 'the service is still up: two requests are in flight')
  await db.query('commit')
  const purged = await purge
  t.equal(purged.status, 503, 'the purge answered at its next batch boundary')
  const purgeBody = await purged.json() as { code: string, message: string }
  t.match(purgeBody, { success: false, code: 'LOG_SHUTTING_DOWN', message: /stopped at a batch boundary after deleting [0-9]+ rows; run it again to finish/ })
  const deleted = Number(/after deleting ([0-9]+) rows/.exec(purgeBody.message)?.[1])
  t.ok(deleted > LOCKED && deleted < TARGET && deleted % 50 === 0, `it stopped at the boundary after the batch that waited (${deleted} rows)`)
  const answered = await slow
  t.equal(answered.status, 200, 'the slow request completed')
  t.match(await answered.json(), { success: true })
  await db.end().catch(() => {})

  t.equal(await exited, 0, 'exit code 0')
  t.match(first.output(), /requests drained, database connections closed[\s\S]*embedded PostgreSQL stopped/, 'the pools closed, then the embedded server stopped')
  t.notOk(existsSync(path.join(dir, 'pg', 'postmaster.pid')), 'no postmaster is left')
  t.equal(await portFree(pgPort), true, 'nothing listens on its port')

  const second = await startServer(env, /Server listening at|Error/)
  t.teardown(second.stop)
  const again = /Server listening at (http:\/\/[^"\s]+)/.exec(second.output())?.[1]
  const check = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${pgPort}/logs` })
  await check.connect()
  const { rows: [stopped] } = await check.query<{ n: string }>('select count(*) as n from logs')
  t.equal(Number(stopped?.n), ROWS - deleted, 'exactly the rows the stopped purge reported are gone')
  const rerun = await fetch(`${again}/api/log/?target_timestamp=${T + TARGET}`, { method: 'DELETE', headers })
  t.equal(rerun.status, 200)
  t.match(await rerun.json(), { success: true, data: TARGET - deleted }, 'the re-run deletes the rest')
  const { rows: [left] } = await check.query<{ n: string, min: string }>('select count(*) as n, min(created_at) as min from logs')
  await check.end()
  t.strictSame({ n: Number(left?.n), min: Number(left?.min) }, { n: ROWS - TARGET, min: T + TARGET }, 'exactly the rows below the target are gone')
  t.equal(await second.stop(), 0)
})

/** Whether nothing listens on 127.0.0.1:port. */
async function portFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => { resolve(false) })
    probe.listen(port, '127.0.0.1', () => { probe.close(() => { resolve(true) }) })
  })
}

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

  // (As root from a private folder it starts: test/db/embedded-root.test.ts.)
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a data folder of another version', { EMBEDDED_PG_DIR: oldCluster }, /holds a PostgreSQL 9 database but the embedded server is PostgreSQL \d+: move that folder away/],
    ['a port in use', { EMBEDDED_PG_DIR: path.join(dir, 'fresh'), EMBEDDED_PG_PORT: String(busyPort) }, new RegExp(`Port ${busyPort} on 127.0.0.1 is already in use`)]
  ]
  for (const [label, env, sentence] of cases) {
    const started = await startServer({ PORT: '0', EMBEDDED_PG_PORT: String(await freePort()), ...env }, /set DATABASE_URL/)
    t.equal(await started.exited, 1, `${label}: exit code 1`)
    t.match(started.output(), sentence, `${label}: the cause and the fix`)
    t.notMatch(started.output(), /^\s+at /m, `${label}: no stack trace`)
  }
})
