import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { sql } from 'kysely'
import dbPlugin from '../../src/plugins/db.js'
import maintenancePlugin from '../../src/plugins/maintenance.js'
import { buildTestApp, createTestDatabase, insertLogs } from '../helpers/app.js'

/** Polls until `done` holds (at most ~10 s): the jobs run on their own timers. */
async function until (done: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (await done()) return true
    await sleep(20)
  }
  return false
}

/** The maintenance plugin alone on the db plugin, with options the app does not expose. */
async function buildMaintenance (t: { teardown: (fn: () => unknown) => void }, foldIntervalMs: number, rollupVacuumIntervalMs?: number) {
  const app = Fastify()
  await app.register(dbPlugin, { connectionString: await createTestDatabase(t), poolMax: 2, statementTimeoutMs: 10_000, connectTimeoutMs: 5000, preparedStatements: true })
  await app.register(maintenancePlugin, { foldIntervalMs, rollupVacuumIntervalMs })
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
  t.teardown(() => { for (const c of held) c.release() })
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
