import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { sql } from 'kysely'
import dbPlugin from '../../src/plugins/db.js'
import maintenancePlugin, { type MaintenancePluginOptions } from '../../src/plugins/maintenance.js'
import { buildApp } from '../../src/app.js'
import { buildTestApp, createTestDatabase, createUser, insertLogs, testConfig } from '../helpers/app.js'

/** Polls until `done` holds (at most ~10 s): the jobs run on their own timers. */
async function until (done: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (await done()) return true
    await sleep(20)
  }
  return false
}

/** What the plugins logged, one parsed JSON line each. */
const logged: Array<Record<string, unknown>> = []
const logLines = { write (line: string) { logged.push(JSON.parse(line) as Record<string, unknown>) } }

const MAINTENANCE_DEFAULTS = { purge: { batchSize: 1000, unitMaxRows: 500_000 }, retentionIntervalMs: 3_600_000 }

/** The maintenance plugin alone on the db plugin, with options the app does not expose. */
async function buildMaintenance (t: { teardown: (fn: () => unknown) => void }, foldIntervalMs: number, rollupVacuumIntervalMs?: number, more: Partial<MaintenancePluginOptions> = {}) {
  const app = Fastify({ logger: { level: 'info', stream: logLines } })
  await app.register(dbPlugin, { connectionString: await createTestDatabase(t), poolMax: 2, statementTimeoutMs: 10_000, connectTimeoutMs: 5000, preparedStatements: true })
  await app.register(maintenancePlugin, { foldIntervalMs, rollupVacuumIntervalMs, ...MAINTENANCE_DEFAULTS, ...more })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

t.test('the fold runs on its timer and reports what it folded', async (t) => {
  const app = await buildMaintenance(t, 20, 0)
  await insertLogs(app.db, [{ user_id: 1, created_at: 1_800_000_000, type: 2 }, { user_id: 2, created_at: 1_800_000_100, type: 2 }])
  t.ok(await until(() => app.maintenance.status().fold.deltasFolded >= 2 && !app.maintenance.status().fold.running), 'the two delta rows were folded')
  const { fold } = app.maintenance.status()
  t.match(fold, { enabled: true, failures: 0, lastError: null })
  t.ok(fold.runs > 0 && fold.lastEndedAt !== null, `${fold.runs} runs`)
  const lastVacuum = async () => (await sql<{ at: Date | null }>`select last_vacuum as at from pg_stat_user_tables where relname = 'logs_stat_hourly'`.execute(app.db)).rows[0]?.at
  t.ok(await until(async () => await lastVacuum() != null), 'the rollups were vacuumed after a fold that moved deltas')
})

t.test('a failing fold is counted and logged, and the next one runs', async (t) => {
  const app = await buildMaintenance(t, 20)
  await sql`alter table logs_stat_delta rename to logs_stat_delta_away`.execute(app.db)
  t.ok(await until(() => app.maintenance.status().fold.failures >= 2), 'the fold failed, twice')
  t.match(app.maintenance.status().fold, { lastError: /logs_stat_delta/ })
  await sql`alter table logs_stat_delta_away rename to logs_stat_delta`.execute(app.db)
  t.ok(await until(() => app.maintenance.status().fold.lastError === null), 'and recovered')
})

t.test('folding off: no fold runs; a vacuum asked for twice runs once at a time', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  app.maintenance.vacuumLogs()
  app.maintenance.vacuumLogs()
  t.equal(app.maintenance.status().vacuum.running, true, 'the first one runs')
  t.ok(await until(() => app.maintenance.status().vacuum.runs === 1 && !app.maintenance.status().vacuum.running), 'it ended')
  await sleep(100)
  t.match(app.maintenance.status(), { fold: { enabled: false, runs: 0 }, vacuum: { runs: 1, failures: 0, cancelled: 0 } }, 'the second did not start')
})

t.test('the fold goes on while requests hold every connection of their pool', async (t) => {
  const app = await buildMaintenance(t, 20)
  // Both request connections taken, as under a load that keeps the pool busy.
  const held = await Promise.all([app.pool.connect(), app.pool.connect()])
  // Released as closed connections: this test sends nothing through app.db, so closing the app
  // would leave them open in the pool, and the database's drop would wait 5 s for them to go.
  t.teardown(() => { for (const c of held) c.release(true) })
  const { rows: [written] } = await held[0]!.query<{ pending: string }>(`
    with written as (insert into logs (user_id, created_at, type) values (1, 1800000000, 2), (2, 1800000060, 2) returning 1)
    select count(*) as pending from written`)
  t.equal(Number(written?.pending), 2)
  t.equal(app.pool.idleCount, 0, 'no request connection is free')
  const deltas = async () => Number((await held[1]!.query<{ n: string }>('select count(*) as n from logs_stat_delta')).rows[0]!.n)
  t.ok(await until(async () => await deltas() === 0), 'the deltas were folded on the fold\'s own connection')
  const { rows: [folded] } = await held[1]!.query<{ n: string }>('select coalesce(sum(n), 0) as n from logs_stat_hourly')
  t.equal(Number(folded?.n), 2, 'into the rollups')
})

const DAY = 86_400

t.test('retention is off unless LOG_RETENTION_DAYS is set', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  t.match(app.maintenance.status().retention, { enabled: false, days: null, runs: 0 })
})

t.test('retention deletes exactly the old rows and keeps the rollups exact', async (t) => {
  const app = await buildMaintenance(t, 0, undefined, { retentionDays: 30, retentionIntervalMs: 50, retentionFirstDelayMs: 50 })
  const now = Math.floor(Date.now() / 1000)
  await insertLogs(app.db, [
    { user_id: 1, created_at: now - 40 * DAY, type: 2, quota: 5 },
    { user_id: 1, created_at: now - 31 * DAY, type: 2, quota: 7 },
    { user_id: 2, created_at: now - 29 * DAY, type: 2, quota: 11 },
    { user_id: 2, created_at: now - 60, type: 2, quota: 13 }
  ])
  t.ok(await until(() => app.maintenance.status().retention.rowsDeleted === 2), 'the two old rows were deleted')
  const left = await app.db.selectFrom('logs').select(['quota']).orderBy('created_at').execute()
  t.strictSame(left.map((r) => r.quota), [11, 13], 'the rows of the last 30 days are kept')
  const status = app.maintenance.status()
  t.match(status.retention, { enabled: true, days: 30, failures: 0, lastError: null })
  t.ok(status.retention.lastCutoff !== null && Math.abs(status.retention.lastCutoff - (now - 30 * DAY)) < 60, 'the cutoff is 30 days back')
  t.match(status.purge, { rowsDeleted: 2 }, 'counted as purged rows')
  t.ok(status.purge.runs >= 1)
  const { rows: [sums] } = await sql<{ n: string, quota: string }>`
    select coalesce(sum(n), 0) as n, coalesce(sum(quota), 0) as quota
    from (select n, quota from logs_stat_hourly union all select n, quota from logs_stat_delta) s`.execute(app.db)
  t.strictSame({ n: Number(sums?.n), quota: Number(sums?.quota) }, { n: 2, quota: 24 }, 'the stats count only what is left')
  t.ok(logged.some((l) => l.msg === 'retention deleted 2 rows older than 30 days' && l.deleted === 2), 'it logged what it deleted')
})

t.test('retention waits while another purge holds the lock, then runs', async (t) => {
  const app = await buildMaintenance(t, 0, undefined, { retentionDays: 1, retentionIntervalMs: 50, retentionFirstDelayMs: 0 })
  const other = await app.pool.connect()
  t.teardown(() => other.release())
  await other.query('select pg_advisory_lock(hashtextextended(\'log-service:history-purge\', 0))')
  const old = Math.floor(Date.now() / 1000) - 3 * DAY
  await insertLogs(app.db, [{ user_id: 1, created_at: old, type: 2 }, { user_id: 1, created_at: old + 1, type: 2 }])
  t.ok(await until(() => app.maintenance.status().retention.skipped >= 2), 'it skipped while the lock was held')
  t.equal((await app.db.selectFrom('logs').select('id').execute()).length, 2, 'and deleted nothing meanwhile')
  t.equal(app.maintenance.status().purge.rowsDeleted, 0)
  await other.query('select pg_advisory_unlock(hashtextextended(\'log-service:history-purge\', 0))')
  t.ok(await until(() => app.maintenance.status().retention.rowsDeleted === 2), 'then it ran')
})

t.test('an API purge answers 409 while retention purges', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0, PURGE_BATCH_SIZE: 1, PURGE_UNIT_MAX_ROWS: 0 })
  const admin = await createUser(app.db, { role: 100 })
  const rows = Array.from({ length: 200 }, (_, i) => ({ user_id: 1, created_at: 1_700_000_000 + i, type: 2 }))
  await insertLogs(app.db, rows)
  // retention's path, by hand: the same runner the timer calls
  const running = app.maintenance.purge(app.maintenanceDb, 1_700_000_200, { source: 'retention' })
  t.ok(await until(() => app.maintenance.status().purge.running), 'retention\'s purge is under way')
  t.equal(app.maintenance.status().purge.source, 'retention')
  const res = await app.inject({ method: 'DELETE', url: '/api/log/?target_timestamp=1700000100', headers: admin.headers })
  t.equal(res.statusCode, 409, 'the API purge does not overlap it')
  t.equal(res.json().code, 'LOG_PURGE_RUNNING')
  t.equal(await running, 200)
})

t.test('closing stops a purge at a batch boundary; the API answers 503 and a re-run finishes it', async (t) => {
  const url = await createTestDatabase(t)
  const config = testConfig({ STAT_FOLD_INTERVAL_MS: 0, PURGE_BATCH_SIZE: 1, PURGE_UNIT_MAX_ROWS: 0 })
  const first = await buildApp({ ...config, DATABASE_URL: url })
  const admin = await createUser(first.db, { role: 100 })
  await insertLogs(first.db, Array.from({ length: 300 }, (_, i) => ({ user_id: 1, created_at: 1_700_000_000 + i, type: 2 })))
  const purge = first.inject({ method: 'DELETE', url: '/api/log/?target_timestamp=1700000250', headers: admin.headers })
  t.ok(await until(() => first.maintenance.status().purge.currentRowsDeleted >= 5), 'the purge is under way')
  const closed = first.close()
  const res = await purge
  await closed
  t.equal(res.statusCode, 503)
  t.match(res.json(), { success: false, code: 'LOG_SHUTTING_DOWN', message: /stopped at a batch boundary after deleting [0-9]+ rows; run it again/ })
  t.equal(res.headers['retry-after'], undefined, 'no Retry-After: this instance is going away, another one may take it')
  const second = await buildApp({ ...config, DATABASE_URL: url })
  t.teardown(() => second.close())
  const left = await second.db.selectFrom('logs').select('created_at').orderBy('created_at').execute()
  t.ok(left.length > 50 && left.length < 295, `the first purge stopped part way (${300 - left.length} rows deleted)`)
  t.equal(left[left.length - 1]?.created_at, 1_700_000_299, 'rows at and after the target were not touched')
  const again = await second.inject({ method: 'DELETE', url: '/api/log/?target_timestamp=1700000250', headers: admin.headers })
  t.equal(again.statusCode, 200)
  t.equal(again.json().data, left.length - 50, 'the re-run deletes the rest')
  const after = await second.db.selectFrom('logs').select('created_at').orderBy('created_at').execute()
  t.strictSame(after.map((r) => r.created_at), Array.from({ length: 50 }, (_, i) => 1_700_000_250 + i), 'exactly the rows below the target are gone')
})
