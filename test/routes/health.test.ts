// GET /healthz (liveness: no database) and GET /readyz (readiness: the database answers and its
// migrations are current, within a second whatever the database does).
import t from 'tap'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import { buildApp } from '../../src/app.js'
import { singleFlight, TIMED_OUT, withDeadline } from '../../src/lib/single-flight.js'
import { buildTestApp, createTestDatabase, testConfig } from '../helpers/app.js'
import { buildAppOn } from '../helpers/session.js'

const UNREACHABLE = 'postgres://postgres@127.0.0.1:1/x'
// The request and maintenance pools stay idle: only readiness reaches the database here.
const quiet = { DB_CONNECT_TIMEOUT_MS: 200, STAT_FOLD_INTERVAL_MS: 0 }

async function onDatabase (url: string, statement: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await client.query(statement, values)
  } finally {
    await client.end()
  }
}

t.test('singleFlight and withDeadline', async (t) => {
  let calls = 0
  let release: (value: string) => void = () => {}
  const run = singleFlight(async () => {
    calls++
    return await new Promise<string>((resolve) => { release = resolve })
  })

  const first = run()
  const second = run()
  t.equal(first, second, 'a caller during a run gets the running promise')
  t.equal(await withDeadline(run(), 10), TIMED_OUT, 'a run that does not end is cut by the deadline')
  t.equal(calls, 1, 'one run in flight, however many callers')

  release('done')
  t.equal(await first, 'done')
  t.equal(await withDeadline(Promise.resolve(7), 1000), 7, 'a value that comes in time is passed on')
  const next = run()
  t.equal(calls, 2, 'once it ended, the next caller starts a new run')
  release('again')
  t.equal(await next, 'again')

  const failing = singleFlight(async () => { throw new Error('boom') })
  await t.rejects(withDeadline(failing(), 1000), /boom/, 'a failure reaches the caller')
})

t.test('healthz and readyz on a migrated database', async (t) => {
  const app = await buildTestApp(t)
  const live = await app.inject({ url: '/healthz' })
  t.equal(live.statusCode, 200)
  t.strictSame(live.json(), { success: true, message: '', data: { status: 'ok' } })

  const ready = await app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.strictSame(ready.json(), { success: true, message: '', data: { status: 'ready', database: 'ok', migrations: 'current' } })
})

t.test('nothing listens where the database should be: alive, not ready', async (t) => {
  const app = await buildAppOn(t, UNREACHABLE, quiet)

  const live = await app.inject({ url: '/healthz' })
  t.equal(live.statusCode, 200, 'healthz makes no database call')
  t.strictSame(live.json(), { success: true, message: '', data: { status: 'ok' } })

  const ready = await app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.headers['retry-after'], '1')
  t.strictSame(ready.json(), {
    success: false,
    message: 'database unavailable',
    code: 'LOG_DB_UNAVAILABLE',
    data: { status: 'not_ready', database: 'unavailable', migrations: 'unknown' }
  })
})

t.test('a database that accepts connections and never answers: 503 cut by the timer, one attempt at a time', async (t) => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => { sockets.add(socket) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  const app = await buildApp({ ...testConfig({ STAT_FOLD_INTERVAL_MS: 0 }), DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` })
  try {
    const answers = await Promise.all([1, 2, 3].map(() => app.inject({ url: '/readyz' })))
    for (const [i, res] of answers.entries()) {
      t.equal(res.statusCode, 503, `probe ${i + 1}: 503`)
      t.strictSame(res.json(), {
        success: false,
        message: 'database did not answer within 1 s',
        code: 'LOG_DB_UNAVAILABLE',
        data: { status: 'not_ready', database: 'timeout', migrations: 'unknown' }
      }, `probe ${i + 1}: cut by the timer, not by a connection error`)
    }
    t.equal(sockets.size, 1, 'three probes, one connection attempt')

    const live = await app.inject({ url: '/healthz' })
    t.equal(live.statusCode, 200, 'alive all along')
  } finally {
    // The hung attempt ends when its server goes; then the app closes at once.
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
    await app.close()
  }
})

t.test('a migration the database lacks: 503 LOG_NOT_READY until it is applied', async (t) => {
  const url = await createTestDatabase(t)
  const { rows } = await onDatabase(url, 'delete from kysely_migration where name = (select max(name) from kysely_migration) returning name, timestamp')
  const removed = rows[0] as { name: string, timestamp: string }
  const app = await buildAppOn(t, url, { STAT_FOLD_INTERVAL_MS: 0 })

  const pending = await app.inject({ url: '/readyz' })
  t.equal(pending.statusCode, 503)
  t.strictSame(pending.json(), {
    success: false,
    message: 'database migrations pending',
    code: 'LOG_NOT_READY',
    data: { status: 'not_ready', database: 'ok', migrations: 'pending' }
  })
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'alive meanwhile')

  await onDatabase(url, 'insert into kysely_migration (name, timestamp) values ($1, $2)', [removed.name, removed.timestamp])
  const ready = await app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200, 'ready once the database has it, without a restart')
  t.equal(ready.json().data.migrations, 'current')
})
