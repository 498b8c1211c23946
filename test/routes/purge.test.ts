// DELETE /api/log/: batched history purge, one at a time, unaffected by its client going away.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import pg from 'pg'
import { sql } from 'kysely'
import { buildApp, type App } from '../../src/app.js'
import { vacuumLogsInBackground } from '../../src/queries/vacuum.js'
import type { Config } from '../../src/config.js'
import { buildTestApp, createTestDatabase, createUser, insertLogs, testConfig } from '../helpers/app.js'

const T = 1_700_000_000

/** The app together with its database URL, so that another client can take locks in it. */
async function buildAppWithUrl (t: { teardown: (fn: () => unknown) => void }, overrides: Partial<Config> = {}): Promise<{ app: App, url: string }> {
  const url = await createTestDatabase(t)
  const app = await buildApp({ ...testConfig(overrides), DATABASE_URL: url })
  t.teardown(() => app.close())
  return { app, url }
}

async function countOlderThan (app: App, before: number): Promise<number> {
  const row = await app.db.selectFrom('logs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('created_at', '<', before)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

async function remainingCreatedAt (app: App): Promise<number[]> {
  const rows = await app.db.selectFrom('logs').select('created_at').orderBy('created_at').orderBy('id').execute()
  return rows.map((r) => Number(r.created_at))
}

/** A client of its own on the test's database, ended with the test. */
async function connectClient (t: { teardown: (fn: () => unknown) => void }, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

/** Waits (bounded) until a connection of the service waits on a lock in this database. */
/**
 * Waits until a service connection is blocked by the locker's session in particular: a purge can
 * also wait a moment on the stat fold's locks, and counting rows during such a wait raced the
 * purge's next batch.
 */
async function waitForBlockedPurge (observer: pg.Client, locker: pg.Client): Promise<void> {
  const { rows: [me] } = await locker.query<{ pid: number }>('select pg_backend_pid() as pid')
  for (let i = 0; i < 1000; i++) {
    const { rows } = await observer.query<{ n: string }>(
      `select count(*) as n from pg_stat_activity
        where datname = current_database() and application_name = 'log-service' and $1 = any(pg_blocking_pids(pid))`,
      [me?.pid]
    )
    if (Number(rows[0]?.n) > 0) return
    await sleep(10)
  }
  throw new Error('the purge never waited on the row lock')
}

/** Waits (bounded) until fewer than `n` rows older than `before` are left. */
async function waitForOlderThanBelow (observer: pg.Client, before: number, n: number): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const { rows } = await observer.query<{ n: string }>('select count(*) as n from logs where created_at < $1', [before])
    if (Number(rows[0]?.n) < n) return
    await sleep(10)
  }
}

/** Old rows at T-n..T-1 (oldest inserted first), so the newest old row is the last one a purge reaches. */
function oldRows (userId: number, n: number) {
  return Array.from({ length: n }, (_, i) => ({ user_id: userId, created_at: T - n + i, type: 2 }))
}

t.test('deletes exactly the rows older than target_timestamp', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  await insertLogs(app.db, [
    { user_id: user.id, created_at: 1, type: 1 },
    { user_id: user.id, created_at: T - 10, type: 2 },
    { user_id: admin.id, created_at: T - 1, type: 4 },
    { user_id: user.id, created_at: T, type: 2 },
    { user_id: admin.id, created_at: T + 1, type: 3 }
  ])

  const res = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: String(T) } })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { success: true, message: '', data: 3 })
  t.strictSame(await remainingCreatedAt(app), [T, T + 1], 'the row at T stays, T-1 is gone')

  const again = await app.inject({ method: 'DELETE', url: '/api/log', headers: admin.headers, query: { target_timestamp: String(T) } })
  t.equal(again.statusCode, 200, 'without the trailing slash too')
  t.strictSame(again.json(), { success: true, message: '', data: 0 })
  t.strictSame(await remainingCreatedAt(app), [T, T + 1])
})

t.test('target_timestamp must be a positive integer', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 100 })
  await insertLogs(app.db, [{ user_id: admin.id, created_at: 1, type: 2 }])

  const cases: Array<Record<string, string>> = [
    {}, { target_timestamp: '' }, { target_timestamp: '0' }, { target_timestamp: '-1' },
    { target_timestamp: 'abc' }, { target_timestamp: '1.5' }, { target_timestamp: '1e400' }, { target_timestamp: 'Infinity' }
  ]
  for (const query of cases) {
    const res = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query })
    t.equal(res.statusCode, 400, JSON.stringify(query))
    t.equal(res.json().success, false)
    t.equal(res.json().message, 'target timestamp is required')
  }
  t.strictSame(await remainingCreatedAt(app), [1], 'nothing was deleted')
})

t.test('only admins may purge', async (t) => {
  const app = await buildTestApp(t)
  const user = await createUser(app.db)
  const disabledAdmin = await createUser(app.db, { role: 10, status: 2 })
  await insertLogs(app.db, [{ user_id: user.id, created_at: 1, type: 2 }])
  const query = { target_timestamp: String(T) }

  const asUser = await app.inject({ method: 'DELETE', url: '/api/log/', headers: user.headers, query })
  t.equal(asUser.statusCode, 403)
  t.equal(asUser.json().success, false)

  const asDisabled = await app.inject({ method: 'DELETE', url: '/api/log/', headers: disabledAdmin.headers, query })
  t.equal(asDisabled.statusCode, 403)
  t.equal(asDisabled.json().success, false)

  const anonymous = await app.inject({ method: 'DELETE', url: '/api/log/', query })
  t.equal(anonymous.statusCode, 401)
  t.equal(anonymous.json().success, false)

  t.strictSame(await remainingCreatedAt(app), [1], 'nothing was deleted')
})

t.test('runs in batches to the end', async (t) => {
  const app = await buildTestApp(t, { PURGE_BATCH_SIZE: 10 })
  const admin = await createUser(app.db, { role: 10 })
  await insertLogs(app.db, oldRows(admin.id, 95))
  await insertLogs(app.db, [{ user_id: admin.id, created_at: T, type: 2 }, { user_id: admin.id, created_at: T + 5, type: 2 }])

  const res = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: String(T) } })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { success: true, message: '', data: 95 })
  t.equal(await countOlderThan(app, T), 0)
  t.strictSame(await remainingCreatedAt(app), [T, T + 5])
})

t.test('one purge at a time; reads keep flowing while it runs', async (t) => {
  const { app, url } = await buildAppWithUrl(t, { PURGE_BATCH_SIZE: 10 })
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  const old = oldRows(user.id, 30)
  const ids = await insertLogs(app.db, old)
  await insertLogs(app.db, [{ user_id: user.id, created_at: T, type: 2, quota: 7 }])
  const lastOldId = ids.at(-1)!
  const query = { target_timestamp: String(T) }

  // Another session holds a row lock on the newest old row: the purge's batch that reaches it waits.
  const locker = await connectClient(t, url)
  const observer = await connectClient(t, url)

  await locker.query('begin')
  await locker.query('select id from logs where id = $1 for update', [lastOldId])
  let released = false
  try {
    const first = app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query })
    await waitForBlockedPurge(observer, locker)
    // On the partitioned layout the purge first waits to drop the empty partitions below the
    // target (the lock on logs is held off by the locker as well), gives up, and goes on by batches.
    await waitForOlderThanBelow(observer, T, 30)

    const second = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query })
    t.equal(second.statusCode, 409, 'a second purge is refused')
    t.equal(second.json().success, false)
    t.type(second.json().message, 'string')
    t.not(second.json().message, '')

    const { rows } = await observer.query<{ n: string }>('select count(*) as n from logs where created_at < $1', [T])
    const left = Number(rows[0]?.n)
    t.ok(left < 30, `earlier batches are committed while the purge waits (${left} of 30 old rows left)`)
    t.ok(left >= 1, 'the locked row is still there')

    const list = await app.inject({ url: '/api/log/', headers: admin.headers })
    t.equal(list.statusCode, 200, 'admin list answers')
    t.equal(list.json().data.total, left + 1)
    const self = await app.inject({ url: '/api/log/self', headers: user.headers })
    t.equal(self.statusCode, 200, 'self list answers')
    const stat = await app.inject({ url: '/api/log/stat', headers: admin.headers, query: { start_timestamp: String(T) } })
    t.equal(stat.statusCode, 200, 'stat answers')
    t.equal(stat.json().data.quota, 7)
    const insert = await observer.query('insert into logs (user_id, created_at, type) values ($1, $2, 2)', [user.id, T + 1])
    t.equal(insert.rowCount, 1, 'inserts keep flowing')

    await locker.query('commit')
    released = true
    const done = await first
    t.equal(done.statusCode, 200)
    t.strictSame(done.json(), { success: true, message: '', data: 30 }, 'the first purge finishes with the full count')
  } finally {
    if (!released) await locker.query('rollback')
  }
  t.equal(await countOlderThan(app, T), 0)
  t.strictSame(await remainingCreatedAt(app), [T, T + 1])

  await insertLogs(app.db, oldRows(user.id, 3))
  const next = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query })
  t.equal(next.statusCode, 200, 'the purge lock was released')
  t.strictSame(next.json(), { success: true, message: '', data: 3 })
})

t.test('a purge finishes when its client disconnects', async (t) => {
  const { app, url } = await buildAppWithUrl(t, { PURGE_BATCH_SIZE: 10 })
  const admin = await createUser(app.db, { role: 10 })
  const ids = await insertLogs(app.db, oldRows(admin.id, 25))
  await insertLogs(app.db, [{ user_id: admin.id, created_at: T, type: 2 }])
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo

  const locker = await connectClient(t, url)
  const observer = await connectClient(t, url)

  await locker.query('begin')
  await locker.query('select id from logs where id = $1 for update', [ids.at(-1)])
  let released = false
  try {
    let answered = false
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'DELETE',
      path: `/api/log/?target_timestamp=${T}`,
      headers: admin.headers
    }, (res) => { answered = true; res.resume() })
    const closed = new Promise<void>((resolve) => req.on('close', () => resolve()))
    req.on('error', () => {}) // the socket is destroyed on purpose
    req.end()

    await waitForBlockedPurge(observer, locker)
    req.destroy()
    await closed
    t.equal(answered, false, 'the client left before any answer')

    await locker.query('commit')
    released = true
  } finally {
    if (!released) await locker.query('rollback')
  }

  let left = -1
  for (let i = 0; i < 1000 && left !== 0; i++) {
    if (i > 0) await sleep(10)
    left = await countOlderThan(app, T)
  }
  t.equal(left, 0, 'every old row is deleted')
  t.strictSame(await remainingCreatedAt(app), [T])
})

t.test('a whole hour purged while another session updates one of its rows is retried, and stays exact', async (t) => {
  const { app, url } = await buildAppWithUrl(t)
  const admin = await createUser(app.db, { role: 10 })
  // T - 4000 … T - 3810: inside the hour before the one holding T, so that hour goes in one statement
  const ids = await insertLogs(app.db, Array.from({ length: 20 }, (_, i) => ({ user_id: admin.id, created_at: T - 4000 + i * 10, type: 2, quota: 1 })))
  await insertLogs(app.db, [{ user_id: admin.id, created_at: T, type: 2, quota: 100 }])

  const locker = await connectClient(t, url)
  const observer = await connectClient(t, url)

  await locker.query('begin')
  await locker.query('update logs set quota = quota + 5 where id = $1', [ids[3]])
  let released = false
  try {
    const purge = app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: String(T) } })
    await waitForBlockedPurge(observer, locker)
    // Committed after the purge's snapshot: its statement fails to serialize and runs again.
    await locker.query('commit')
    released = true
    const res = await purge
    t.equal(res.statusCode, 200)
    t.strictSame(res.json(), { success: true, message: '', data: 20 })
  } finally {
    if (!released) await locker.query('rollback')
  }
  t.strictSame(await remainingCreatedAt(app), [T])
  const stat = await app.inject({ url: '/api/log/stat', headers: admin.headers, query: { type: '2' } })
  t.equal(stat.json().data.quota, 100, 'the stat counts the remaining row only, the update included nowhere')
  const hour = await app.inject({ url: '/api/log/stat', headers: admin.headers, query: { type: '2', start_timestamp: String(T - 4400), end_timestamp: String(T - 801) } })
  t.equal(hour.json().data.quota, 0, 'the purged hour sums to nothing')
  const list = await app.inject({ url: '/api/log/', headers: admin.headers })
  t.match(list.json().data, { total: 1, total_exact: true })
})

t.test('a purge that deleted rows vacuums logs in the background', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  await insertLogs(app.db, oldRows(admin.id, 5))
  // On the partitioned layout the partitions are vacuumed (the parent has no rows of its own).
  const lastVacuum = async () => (await sql<{ at: Date | null }>`select max(last_vacuum) as at from pg_stat_user_tables
    where relid = 'logs'::regclass or relid in (select inhrelid from pg_inherits where inhparent = 'logs'::regclass)`.execute(app.db)).rows[0]?.at ?? null
  t.equal(await lastVacuum(), null, 'never vacuumed by hand before')

  const none = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: '10' } })
  t.strictSame(none.json().data, 0)
  const res = await app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: String(T) } })
  t.strictSame(res.json().data, 5)
  let at: Date | null = null
  for (let i = 0; i < 500 && at === null; i++) {
    if (i > 0) await sleep(20)
    at = await lastVacuum()
  }
  t.type(at, Date, 'logs was vacuumed')
})

t.test('a background vacuum cancelled before it starts does not run', async (t) => {
  const app = await buildTestApp(t)
  const vacuum = vacuumLogsInBackground(app.db)
  await vacuum.cancel()
  await vacuum.done
  const { rows } = await sql<{ at: Date | null }>`select last_vacuum as at from pg_stat_user_tables where relname = 'logs'`.execute(app.db)
  t.equal(rows[0]?.at, null, 'logs was not vacuumed')
  t.strictSame((await sql<{ d: string }>`select current_setting('vacuum_cost_delay') as d`.execute(app.db)).rows[0]?.d, '0', 'the pooled connection keeps its settings')
})
