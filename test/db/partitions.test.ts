// The partitioned layout (LOG_PARTITIONS): the conversion keeps every row, index, trigger and the
// id sequence; partitions are made ahead and take their rows out of the default partition; a purge
// drops whole partitions and keeps the rollups exact; reads with a window scan only the partitions
// that overlap it (EXPLAIN's plan, checked as a property over random windows).
import t from 'tap'
import fc from 'fast-check'
import pg from 'pg'
import { Kysely, sql, type CompiledQuery } from 'kysely'
import Fastify from 'fastify'
import { buildApp, type App } from '../../src/app.js'
import dbPlugin from '../../src/plugins/db.js'
import maintenancePlugin from '../../src/plugins/maintenance.js'
import metricsPlugin from '../../src/plugins/metrics.js'
import { PlannedPostgresDialect } from '../../src/db/driver.js'
import { applyPartitioning, migrateToLatest } from '../../src/db/migrate.js'
import { createDb, createPool } from '../../src/db/pool.js'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { purgeLogsBefore } from '../../src/queries/purge.js'
import type { Database } from '../../src/db/types.js'
import { convertToPartitions, DEFAULT_PARTITION, ensurePartitions, PARTITIONED_ROLLUP, partitionName, periodAhead, periodStart, readLayout, rollupPartitionName } from '../../src/queries/partitions.js'
import { listAdminLogs, listUserLogs } from '../../src/queries/logs/page.js'
import { statLogs } from '../../src/queries/logs/stat.js'
import { createTestDatabase, createUser, insertLogs, testConfig } from '../helpers/app.js'
import { assertRollupsExact } from '../helpers/faults.js'
import { assertProperty, propertySettings } from '../helpers/isolation.js'

type Tap = { teardown: (fn: () => unknown) => void }

const DAY = 86_400
/** 2023-11-14 00:00 UTC, a day boundary */
const D0 = periodStart('day', 1_700_000_000)

/** A database migrated from nothing: the plain table, whatever layout the suite's template has. */
async function plainDatabase (t: Tap): Promise<{ url: string, db: Kysely<Database> }> {
  const url = await createTestDatabase(t, { empty: true })
  const db = createDb(createPool({ connectionString: url, max: 2, statementTimeoutMs: 0 }))
  // Registered after the database's drop, so it runs before it.
  t.teardown(() => db.destroy())
  await migrateToLatest(db)
  return { url, db }
}

async function appOn (t: Tap, url: string): Promise<App> {
  const app = await buildApp({ ...testConfig({ STAT_FOLD_INTERVAL_MS: 0 }), DATABASE_URL: url })
  t.teardown(() => app.close())
  return app
}

/** A database converted to day partitions, with partitions for days 0 to 2 (D0 on), its app and an admin. */
async function dayPartitionedApp (t: Tap) {
  const { url, db } = await plainDatabase(t)
  await convertToPartitions(db, 'day', { now: D0 + 6 * DAY })
  await ensurePartitions(db, 'day', D0, D0 + 2 * DAY)
  const app = await appOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  return { url, db, app, admin }
}

/** Every row, as text, by id. */
async function rowsById (db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ r: string }>`select l::text as r from logs l order by id`.execute(db)
  return rows.map((r) => r.r)
}

async function indexNames (db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'logs' order by 1`.execute(db)
  return rows.map((r) => r.name)
}

async function triggerNames (db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select tgname as name from pg_trigger where tgrelid = 'logs'::regclass and not tgisinternal order by 1`.execute(db)
  return rows.map((r) => r.name)
}

async function partitionOf (db: Kysely<Database>, id: number): Promise<string> {
  const { rows: [row] } = await sql<{ part: string }>`select tableoid::regclass::text as part from logs where id = ${id}`.execute(db)
  return row!.part
}

/** The partitions holding the per-user hourly rollup's rows of the hour holding `ts`. */
async function rollupPartitionsOf (db: Kysely<Database>, ts: number): Promise<string[]> {
  const { rows } = await sql<{ part: string }>`select distinct tableoid::regclass::text as part from ${sql.table(PARTITIONED_ROLLUP)}
    where hour = ${Math.floor(ts / 3600)}`.execute(db)
  return rows.map((r) => r.part)
}

/** The names of the partitions of a partitioned table, sorted. */
async function partitionsOfTable (db: Kysely<Database>, table: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = ${table}::regclass order by 1`.execute(db)
  return rows.map((r) => r.name)
}

function dayRows (userId: number, days: number[], perDay: number) {
  return days.flatMap((d) => Array.from({ length: perDay }, (_, i) => ({
    user_id: userId, created_at: D0 + d * DAY + i * 3000, type: 1 + (i % 3), quota: 10 + i, prompt_tokens: i, completion_tokens: 2 * i
  })))
}

t.test('the conversion keeps every row, index, trigger and the id sequence', async (t) => {
  const { url, db } = await plainDatabase(t)
  const user = await createUser(db)
  const now = D0 + 10 * DAY + 100
  const ids = await insertLogs(db, [
    ...dayRows(user.id, [0, 1, 3], 5),
    { user_id: user.id, created_at: 631_152_000, type: 2, quota: 7 }, // 1990: before any partition
    { user_id: user.id, created_at: 4_102_444_800, type: 2, quota: 9 } // 2100: past every partition
  ])
  await foldStatDeltas(db)
  const rowsBefore = await rowsById(db)
  const indexesBefore = await indexNames(db)
  const triggersBefore = await triggerNames(db)

  const steps: string[] = []
  t.equal(await convertToPartitions(db, 'day', { now, onStep: (s) => steps.push(s) }), true, 'converted')
  t.equal(await convertToPartitions(db, 'day', { now }), false, 'a second conversion does nothing')
  t.match(steps.join('\n'), /copied 17 rows/, 'the steps say what was copied')

  const layout = await readLayout(db)
  t.equal(layout.partitioned, true)
  t.equal(layout.grain, 'day')
  t.equal(layout.hasDefault, true)
  const expected = [0, 1, 3].map((d) => partitionName('day', D0 + d * DAY))
  for (let s = periodStart('day', now); s < periodAhead('day', now); s += DAY) expected.push(partitionName('day', s))
  t.strictSame(layout.partitions.map((p) => p.name), expected, 'a partition per day with rows, and from today a week ahead')

  t.strictSame(await rowsById(db), rowsBefore, 'every row kept as it was')
  t.strictSame(await indexNames(db), indexesBefore, 'the same indexes by name')
  t.strictSame(await triggerNames(db), triggersBefore, 'the same triggers')
  t.equal(await partitionOf(db, ids[0]!), partitionName('day', D0), 'a row in its day')
  t.equal(await partitionOf(db, ids[15]!), DEFAULT_PARTITION, 'a row of 1990 in the default partition')
  t.equal(await partitionOf(db, ids[16]!), DEFAULT_PARTITION, 'a row of 2100 in the default partition')
  t.strictSame(await partitionsOfTable(db, PARTITIONED_ROLLUP), [...expected.map(rollupPartitionName), `${PARTITIONED_ROLLUP}_default`].sort(),
    'the per-user hourly rollup has the same periods, and a default partition')
  t.strictSame(await rollupPartitionsOf(db, D0 + 5), [rollupPartitionName(partitionName('day', D0))], 'a rollup row in its day')
  t.strictSame(await rollupPartitionsOf(db, 631_152_000), [`${PARTITIONED_ROLLUP}_default`], 'the 1990 row\'s in the default')

  // Writes after the swap: the sequence goes on, the triggers feed the rollups.
  const [next] = await insertLogs(db, [{ user_id: user.id, created_at: D0 + DAY + 5, type: 2, quota: 1 }])
  t.ok(next! > Math.max(...ids), 'the id sequence continues')
  t.equal(await partitionOf(db, next!), partitionName('day', D0 + DAY))
  await assertRollupsExact(t, db, 'after conversion and a write')

  // The app reads the same answers from it.
  const app = await appOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  const res = await app.inject({ url: `/api/log/stat?start_timestamp=${D0}&end_timestamp=${D0 + 4 * DAY}`, headers: admin.headers })
  // Stat's quota is the consumption rows' (type 2), as in new-api.
  t.equal(res.json().data.quota, 3 * (11 + 14) + 1, 'stat over the partitions')
})

t.test('LOG_PARTITIONS applies once; off leaves the layout alone', async (t) => {
  const { db } = await plainDatabase(t)
  t.equal(await applyPartitioning(db, 'off'), false)
  t.equal((await readLayout(db)).partitioned, false, 'off keeps the plain table')
  t.equal(await applyPartitioning(db, 'month'), true)
  const layout = await readLayout(db)
  t.equal(layout.grain, 'month')
  t.equal(await applyPartitioning(db, 'day'), false, 'a partitioned table is not converted again')
  t.equal(await applyPartitioning(db, 'off'), false)
  t.equal((await readLayout(db)).partitioned, true, 'off does not turn it back')
})

t.test('a new partition takes its rows out of the default partition', async (t) => {
  const { db } = await plainDatabase(t)
  const user = await createUser(db)
  await convertToPartitions(db, 'day', { now: D0 })
  // Days 20 and 21 have no partition yet: their rows wait in the default partition.
  const ids = await insertLogs(db, dayRows(user.id, [20, 21], 4))
  t.equal(await partitionOf(db, ids[0]!), DEFAULT_PARTITION)
  await foldStatDeltas(db)
  const rowsBefore = await rowsById(db)

  const created = await ensurePartitions(db, 'day', D0 + 19 * DAY, D0 + 20 * DAY + 5)
  t.strictSame(created, [partitionName('day', D0 + 19 * DAY), partitionName('day', D0 + 20 * DAY)])
  t.strictSame(await ensurePartitions(db, 'day', D0 + 19 * DAY, D0 + 20 * DAY), [], 'existing partitions are kept')
  t.equal(await partitionOf(db, ids[0]!), partitionName('day', D0 + 20 * DAY), 'moved into its day')
  t.equal(await partitionOf(db, ids[4]!), DEFAULT_PARTITION, 'day 21 still waits')
  t.strictSame(await rowsById(db), rowsBefore, 'no row lost or doubled')
  t.strictSame(await rollupPartitionsOf(db, D0 + 20 * DAY), [rollupPartitionName(partitionName('day', D0 + 20 * DAY))], 'its rollup rows moved too')
  t.strictSame(await rollupPartitionsOf(db, D0 + 21 * DAY), [`${PARTITIONED_ROLLUP}_default`], 'day 21\'s still wait')
  await assertRollupsExact(t, db, 'after the move')
})

t.test('logs partitioned before the rollup was: the purge deletes its rows, then the rollup takes the periods and goes with them', async (t) => {
  const { url, db } = await plainDatabase(t)
  const user = await createUser(db)
  await insertLogs(db, dayRows(user.id, [0, 1, 2], 4))
  await foldStatDeltas(db)
  await convertToPartitions(db, 'day', { now: D0 + 6 * DAY })
  // The layout an earlier version made: logs partitioned, the rollup one table.
  await sql`create table whole_rollup (like ${sql.table(PARTITIONED_ROLLUP)} including all)`.execute(db)
  await sql`insert into whole_rollup select * from ${sql.table(PARTITIONED_ROLLUP)}`.execute(db)
  await sql`drop table ${sql.table(PARTITIONED_ROLLUP)}`.execute(db)
  await sql`alter table whole_rollup rename to ${sql.table(PARTITIONED_ROLLUP)}`.execute(db)
  t.equal((await readLayout(db)).rollupPartitions, null, 'the rollup is one table')
  t.equal(await purgeLogsBefore(db, { before: D0 + DAY, batchSize: 100, unitMaxRows: 500_000 }), 4, 'day 0 purged')
  t.notOk((await readLayout(db)).partitions.some((p) => p.name === partitionName('day', D0)), 'its partition dropped')
  await assertRollupsExact(t, db, 'after a purge with the rollup whole')

  t.equal(await applyPartitioning(db, 'day'), true, 'LOG_PARTITIONS converts the rollup')
  t.equal(await applyPartitioning(db, 'day'), false, 'once')
  const names = (await readLayout(db)).partitions.map((p) => p.name)
  t.strictSame(await partitionsOfTable(db, PARTITIONED_ROLLUP), [...names.map(rollupPartitionName), `${PARTITIONED_ROLLUP}_default`].sort())
  await assertRollupsExact(t, db, 'after the rollup\'s conversion')

  // A period whose rollup partition is missing (made by an instance still on the earlier version) gets it.
  const day6 = rollupPartitionName(partitionName('day', D0 + 6 * DAY))
  await sql`alter table ${sql.table(PARTITIONED_ROLLUP)} detach partition ${sql.table(day6)}`.execute(db)
  await sql`drop table ${sql.table(day6)}`.execute(db)
  t.strictSame(await ensurePartitions(db, 'day', D0 + 6 * DAY, D0 + 6 * DAY), [], 'no logs partition is new')
  t.ok((await partitionsOfTable(db, PARTITIONED_ROLLUP)).includes(day6), 'the rollup\'s is made again')

  const app = await appOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  const res = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${D0 + 2 * DAY}`, headers: admin.headers })
  t.match(res.json(), { success: true, data: 4 })
  t.strictSame(await tablesLike(db, `${PARTITIONED_ROLLUP}_p%`), names.slice(1).map(rollupPartitionName), 'the rollup\'s day 1 went with its own')
  await assertRollupsExact(t, db, 'after the purge')
})

t.test('the maintenance job creates partitions ahead on a partitioned table', async (t) => {
  const { url, db } = await plainDatabase(t)
  const now = Math.floor(Date.now() / 1000)
  await convertToPartitions(db, 'month', { now: now - 200 * DAY })
  // The plugin alone, its first run at once (the service waits 10 s after start-up).
  const app = Fastify({ logger: false })
  await app.register(dbPlugin, { connectionString: url, poolMax: 2, statementTimeoutMs: 10_000, connectTimeoutMs: 5000, preparedStatements: true })
  await app.register(maintenancePlugin, { foldIntervalMs: 0, purge: { batchSize: 5000, unitMaxRows: 500_000 }, retentionIntervalMs: 3_600_000, partitionUpkeepFirstDelayMs: 0 })
  await app.register(metricsPlugin)
  await app.ready()
  t.teardown(() => app.close())
  for (let i = 0; i < 1500 && app.maintenance.status().partitions.runs === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  const status = app.maintenance.status().partitions
  t.equal(status.grain, 'month')
  t.equal(status.failures, 0)
  t.ok(status.created >= 3, `${status.created} partitions created`)
  const exposition = await app.metrics.registry.metrics()
  t.match(exposition, new RegExp(`^log_service_partitions_created_total ${status.created}$`, 'm'), 'in /metrics: the partitions created')
  t.match(exposition, /^log_service_maintenance_runs_total\{job="partitions"\} 1$/m, 'in /metrics: the job\'s runs')
  t.match(exposition, /^log_service_maintenance_failures_total\{job="partitions"\} 0$/m, 'in /metrics: no failure')
  const names = (await readLayout(db)).partitions.map((p) => p.name)
  for (let s = periodStart('month', now), i = 0; i < 3; i++) {
    t.ok(names.includes(partitionName('month', s)), `${partitionName('month', s)} exists`)
    s = periodStart('month', s + 32 * DAY)
  }
})

t.test('a purge drops whole partitions, deletes the rest row by row, and keeps the rollups exact', async (t) => {
  const { url, db } = await plainDatabase(t)
  await convertToPartitions(db, 'day', { now: D0 + 6 * DAY })
  t.equal((await ensurePartitions(db, 'day', D0, D0 + 5 * DAY)).length, 6, 'partitions for days 0 to 5')
  const app = await appOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  await insertLogs(app.db, [
    ...dayRows(user.id, [0, 1, 2, 3, 4], 20),
    { user_id: user.id, created_at: 631_152_000, type: 2, quota: 7 } // a straggler in the default partition
  ])
  // Half of the rows folded into the rollups, half pending as deltas: both must go with their rows.
  await sql`select 1`.execute(app.db)
  const target = D0 + 3 * DAY + 12 * 3600 + 1
  const res = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${target}`, headers: admin.headers })
  t.equal(res.statusCode, 200)
  const expectedGone = 3 * 20 + 1 + dayRows(user.id, [3], 20).filter((r) => r.created_at < target).length
  t.equal(res.json().data, expectedGone, 'the answer counts every row deleted')

  const names = (await readLayout(db)).partitions.map((p) => p.name)
  for (const d of [0, 1, 2]) t.notOk(names.includes(partitionName('day', D0 + d * DAY)), `day ${d} dropped`)
  t.ok(names.includes(partitionName('day', D0 + 3 * DAY)), 'the boundary day is kept')
  const { rows: [left] } = await sql<{ below: string, total: string }>`
    select count(*) filter (where created_at < ${target}) as below, count(*) as total from logs`.execute(db)
  t.equal(Number(left!.below), 0, 'nothing below the target')
  t.equal(Number(left!.total), 100 + 1 - expectedGone, 'everything at or after it kept')
  await app.maintenance.reclaimed()
  t.strictSame(await tablesLike(db, 'logs_p%'), names.filter((n) => n.startsWith('logs_p')), 'the dropped partitions\' tables are gone, not only detached')
  t.strictSame(await tablesLike(db, 'purged_%'), [], 'no detached partition is left waiting for its DROP')
  t.strictSame(await tablesLike(db, `${PARTITIONED_ROLLUP}_p%`), names.map(rollupPartitionName), 'the rollup\'s partitions of those days are dropped with them')
  await assertRollupsExact(t, db, 'after the purge')
  const stat = await app.inject({ url: `/api/log/stat?start_timestamp=${D0}&end_timestamp=${D0 + 5 * DAY}`, headers: admin.headers })
  const { rows: [sum] } = await sql<{ q: string }>`select coalesce(sum(quota), 0) as q from logs where type = 2`.execute(db)
  t.equal(stat.json().data.quota, Number(sum!.q), 'stat equals SQL after the purge')
})

t.test('a purge past now keeps the partitions of the current and coming periods: writes land in them', async (t) => {
  const { url, db } = await plainDatabase(t)
  const now = Math.floor(Date.now() / 1000)
  await convertToPartitions(db, 'day', { now })
  const app = await appOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  await insertLogs(app.db, [{ user_id: user.id, created_at: now - 5, type: 2, quota: 3 }])
  const before = (await readLayout(db)).partitions.map((p) => p.name)
  const res = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${now + 3 * DAY}`, headers: admin.headers })
  t.match(res.json(), { success: true, data: 1 }, 'the row of today is deleted')
  t.strictSame((await readLayout(db)).partitions.map((p) => p.name), before, 'today\'s partition and those ahead stay')
  const [id] = await insertLogs(app.db, [{ user_id: user.id, created_at: now, type: 2, quota: 1 }])
  t.equal(await partitionOf(db, id!), partitionName('day', now), 'a new row lands in today\'s partition, not the default')
  await assertRollupsExact(t, db, 'after the purge')
})

/** Tables (not indexes) whose names match a LIKE pattern, sorted. */
async function tablesLike (db: Kysely<Database>, pattern: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select relname as name from pg_class
    where relkind in ('r', 'p') and relname like ${pattern} order by 1`.execute(db)
  return rows.map((r) => r.name)
}

t.test('a partition a purge detached but did not get to drop (the process died) goes with the next purge', async (t) => {
  const { db, app, admin } = await dayPartitionedApp(t)
  await insertLogs(app.db, dayRows(admin.id, [1], 5))
  // What the purge's detach transaction leaves when its connection is lost before the DROP.
  const day0 = partitionName('day', D0)
  await sql`alter table logs detach partition ${sql.table(day0)}`.execute(db)
  await sql`alter table ${sql.table(day0)} rename to ${sql.table(`purged_${day0}`)}`.execute(db)
  // A table of the operator's that merely looks alike is not the purge's to drop.
  await sql`create table purged_notes (id int)`.execute(db)
  const res = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${D0 + DAY + 1}`, headers: admin.headers })
  t.match(res.json(), { success: true, data: 1 }, 'the purge itself runs as usual')
  t.strictSame(await tablesLike(db, 'purged_%'), ['purged_notes'], 'the leftover is dropped, the look-alike kept')
  await assertRollupsExact(t, db, 'after the purge')
})

t.test('the purge answers once the rows are gone: the DROPs of what it detached follow it', async (t) => {
  const { url, db, app, admin } = await dayPartitionedApp(t)
  await insertLogs(app.db, dayRows(admin.id, [0, 1], 4))
  // A DROP of a detached partition waits, inside its own transaction, for a lock the test holds.
  const holder = new pg.Client({ connectionString: url })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('select pg_advisory_lock(4242)')
  await sql`create function hold_purged_drop() returns event_trigger language plpgsql as $$
    begin
      if exists (select from pg_event_trigger_dropped_objects() where object_name like 'purged\_%') then
        perform pg_advisory_lock(4242);
        perform pg_advisory_unlock(4242);
      end if;
    end $$`.execute(db)
  await sql`create event trigger hold_purged_drop on sql_drop execute function hold_purged_drop()`.execute(db)
  const res = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${D0 + DAY}`, headers: admin.headers })
  t.match(res.json(), { success: true, data: 4 }, 'the purge answers with the day\'s rows')
  const { rows: [left] } = await sql<{ n: string }>`select count(*) as n from logs where created_at < ${D0 + DAY}`.execute(db)
  t.equal(Number(left!.n), 0, 'which are out of logs')
  await assertRollupsExact(t, db, 'when it answers')
  t.strictSame(await tablesLike(db, 'purged_%'), [`purged_${partitionName('day', D0)}`, `purged_${rollupPartitionName(partitionName('day', D0))}`],
    'the detached tables are still being dropped')
  await holder.query('select pg_advisory_unlock(4242)')
  await app.maintenance.reclaimed()
  t.strictSame(await tablesLike(db, 'purged_%'), [], 'then they are gone')
})

t.test('a DROP that fails after the purge answered is logged, and the next purge drops the table', async (t) => {
  const { db, app, admin } = await dayPartitionedApp(t)
  await insertLogs(app.db, dayRows(admin.id, [0, 1], 4))
  // An event trigger refuses the DROP of a detached partition: the DROP is the only step it stops.
  await sql`create function refuse_purged_drop() returns event_trigger language plpgsql as $$
    begin
      if exists (select from pg_event_trigger_dropped_objects() where object_name like 'purged\_%') then
        raise exception 'drop refused by the test';
      end if;
    end $$`.execute(db)
  await sql`create event trigger refuse_purged_drop on sql_drop execute function refuse_purged_drop()`.execute(db)
  const warnings: string[] = []
  app.log.warn = ((obj: unknown, msg?: string) => { warnings.push(String(msg ?? obj)) }) as typeof app.log.warn
  const res = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${D0 + DAY}`, headers: admin.headers })
  t.match(res.json(), { success: true, data: 4 }, 'the purge answers with the rows it deleted')
  await app.maintenance.reclaimed()
  t.ok(warnings.some((w) => w.includes('dropping a partition the purge detached failed')), 'the failed DROP is logged')
  const { rows: [left] } = await sql<{ n: string }>`select count(*) as n from logs where created_at < ${D0 + DAY}`.execute(db)
  t.equal(Number(left!.n), 0, 'the detached day\'s rows are out of logs')
  t.strictSame(await tablesLike(db, 'purged_%'), [`purged_${partitionName('day', D0)}`, `purged_${rollupPartitionName(partitionName('day', D0))}`],
    'its table, and its rollup\'s, wait for a DROP')
  await assertRollupsExact(t, db, 'after the failed DROP')

  await sql`drop event trigger refuse_purged_drop`.execute(db)
  const again = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${D0 + DAY}`, headers: admin.headers })
  t.match(again.json(), { success: true, data: 0 }, 'the next purge has nothing left to delete')
  await app.maintenance.reclaimed()
  t.strictSame(await tablesLike(db, 'purged_%'), [], 'and drops the table')
})

/** Relations a plan reads (partitions by name), walking every node. */
function relationsOf (plan: unknown, out = new Set<string>()): Set<string> {
  if (plan === null || typeof plan !== 'object') return out
  const node = plan as Record<string, unknown>
  if (typeof node['Relation Name'] === 'string') out.add(node['Relation Name'])
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) for (const v of value) relationsOf(v, out)
    else if (typeof value === 'object') relationsOf(value, out)
  }
  return out
}

t.test('reads with a window scan only the partitions that overlap it (EXPLAIN, as a property)', async (t) => {
  const { url, db } = await plainDatabase(t)
  const days = Array.from({ length: 12 }, (_, i) => i)
  await convertToPartitions(db, 'day', { now: D0 + 12 * DAY })
  await ensurePartitions(db, 'day', D0, D0 + 11 * DAY)
  const user = await createUser(db)
  await insertLogs(db, dayRows(user.id, days, 3))
  await sql`analyze logs`.execute(db)
  const layout = await readLayout(db)

  // The service's own query functions, on a Kysely that records what they send.
  const sent: CompiledQuery[] = []
  const pool = createPool({ connectionString: url, max: 2 })
  const recorder = new Kysely<Database>({
    dialect: new PlannedPostgresDialect(pool, { prepare: false }),
    log (event) { if (event.level === 'query') sent.push(event.query) }
  })
  t.teardown(() => recorder.destroy())
  const explain = async (q: CompiledQuery): Promise<Set<string>> => {
    const { rows } = await pool.query<{ 'QUERY PLAN': unknown }>(`explain (format json) ${q.sql}`, [...q.parameters])
    return relationsOf(rows[0]!['QUERY PLAN'])
  }

  const { seed, runs } = propertySettings()
  const windows = fc.tuple(fc.integer({ min: -2, max: 14 }), fc.integer({ min: 0, max: 5 * DAY }), fc.integer({ min: 1, max: 4 * DAY }))
    .map(([day, offset, span]) => ({ start: D0 + day * DAY + offset, end: D0 + day * DAY + offset + span }))
  const reads = fc.constantFrom('admin list', 'user list', 'admin stat', 'user stat')
  await assertProperty(fc.asyncProperty(windows, reads, async (w, read) => {
    sent.length = 0
    const f = { startTimestamp: w.start, endTimestamp: w.end, ...(read.startsWith('user') ? { userId: user.id } : {}) }
    const page = { page: 1, pageSize: 10 }
    if (read.endsWith('list')) await (read === 'admin list' ? listAdminLogs(recorder, f, page) : listUserLogs(recorder, f, page))
    else await statLogs(recorder, f, D0 + 30 * DAY)
    let partitionsRead = 0
    for (const q of sent) {
      if (!/\blogs\b/.test(q.sql)) continue
      for (const name of await explain(q)) {
        if (name === 'logs' || !name.startsWith('logs_p')) continue
        const p = layout.partitions.find((x) => x.name === name)
        if (p === undefined) throw new Error(`unknown partition ${name}`)
        partitionsRead++
        // The window is [start, end] (end inclusive).
        if (!(p.from <= w.end && w.start < p.to)) throw new Error(`${read} over [${w.start}, ${w.end}] read ${name} [${p.from}, ${p.to}): ${q.sql}`)
      }
    }
    if (read.endsWith('list') && partitionsRead === 0 && w.start < D0 + 12 * DAY && w.end >= D0) throw new Error(`${read} over [${w.start}, ${w.end}] read no partition at all`)
  }), { fileSeed: seed, seed, numRuns: runs(60) })
  t.pass('every plan read only partitions overlapping its window')
})

t.test('a long reader holds off the detach: the purge deletes by batches, and the next one drops the emptied partition', async (t) => {
  const { url, db, app, admin } = await dayPartitionedApp(t)
  await insertLogs(app.db, dayRows(admin.id, [0, 1, 2], 10))
  const reader = new pg.Client({ connectionString: url })
  await reader.connect()
  t.teardown(() => reader.end())
  // An export or a report in one long transaction: its lock on logs outlives the purge's tries.
  await reader.query('begin')
  await reader.query('select count(*) from logs')

  const target = D0 + 2 * DAY
  const first = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${target}`, headers: admin.headers })
  t.equal(first.json().data, 20, 'days 0 and 1 deleted all the same')
  const names = (await readLayout(db)).partitions.map((p) => p.name)
  t.ok(names.includes(partitionName('day', D0)), 'their partitions stay, empty')
  await assertRollupsExact(t, db, 'after the purge by batches')

  await reader.query('rollback')
  const second = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${target}`, headers: admin.headers })
  t.equal(second.json().data, 0, 'nothing left to delete')
  const after = (await readLayout(db)).partitions.map((p) => p.name)
  t.notOk(after.includes(partitionName('day', D0)), 'the next purge drops the emptied partitions')
  t.notOk(after.includes(partitionName('day', D0 + DAY)))
  t.ok(after.includes(partitionName('day', D0 + 2 * DAY)), 'not the one at the target')
  await assertRollupsExact(t, db, 'after the drop')
})
