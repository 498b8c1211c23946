import t, { type Test } from 'tap'
import { sql } from 'kysely'
import { buildTestApp, createUser, insertLogs } from '../helpers/app.js'
import { COUNT_LIMITS } from '../../src/queries/logs/count-strategy.js'
import type { LogFilter } from '../../src/queries/logs/filter.js'
import { countLogs } from '../../src/queries/logs/total.js'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { exactSums } from '../../src/queries/rollups/read.js'
import { purgeLogsBefore, PurgeStoppedError } from '../../src/queries/purge.js'
import { STAT_TABLES, vacuumStatTables } from '../../src/queries/vacuum.js'
import type { App } from '../../src/app.js'

// The rollups must give exactly what a scan of logs gives, for any window, before and after
// folding, through inserts, deletes, updates and truncation.

function prng (seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

async function scan (app: App, f: LogFilter) {
  let q = app.db.selectFrom('logs').select([sql<number>`count(*)`.as('n'), sql<number>`coalesce(sum(quota), 0)::int8`.as('quota')])
  if (f.userId !== undefined) q = q.where('user_id', '=', f.userId)
  if (f.type) q = q.where('type', '=', f.type)
  if (f.startTimestamp !== undefined) q = q.where('created_at', '>=', f.startTimestamp)
  if (f.endTimestamp !== undefined) q = q.where('created_at', '<=', f.endTimestamp)
  return await q.executeTakeFirstOrThrow()
}

const random = prng(7)
const T0 = 1_790_000_000 - (1_790_000_000 % 3600)
const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)] as T

function randomFilters (): LogFilter[] {
  const out: LogFilter[] = [{}, { type: 2 }, { userId: 1 }, { userId: 2, type: 1 }]
  for (let i = 0; i < 40; i++) {
    const a = T0 - 7200 + Math.floor(random() * 40_000)
    const b = a + Math.floor(random() * (random() < 0.5 ? 30_000 : 300_000)) - 2000
    out.push({
      startTimestamp: random() < 0.2 ? undefined : a,
      endTimestamp: random() < 0.2 ? undefined : b,
      type: pick([undefined, 0, 1, 2, 5]),
      userId: pick([undefined, 1, 2, 3])
    })
  }
  // hour boundaries exactly, and timestamps around zero
  out.push({ startTimestamp: T0, endTimestamp: T0 + 3599 }, { startTimestamp: T0 + 1, endTimestamp: T0 + 3600 })
  out.push({ startTimestamp: 0, endTimestamp: 3599 }, { endTimestamp: 3600 }, { startTimestamp: -5000, endTimestamp: 10 })
  return out
}

async function assertExact (t: Test, app: App, label: string) {
  for (const f of randomFilters()) {
    const expected = await scan(app, f)
    const got = await exactSums(app.db, f)
    t.strictSame(got, expected, `${label}: ${JSON.stringify(f)}`)
  }
}

t.test('exact sums match a scan through writes, deletes, updates and folds', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const rows = []
  for (let i = 0; i < 1500; i++) {
    rows.push({
      user_id: 1 + Math.floor(random() * 3),
      created_at: T0 - 7200 + Math.floor(random() * (i % 2 === 0 ? 36_000 : 400_000)),
      type: pick([1, 2, 2, 2, 5]),
      quota: Math.floor(random() * 1000)
    })
  }
  rows.push({ user_id: 1, created_at: -100, type: 2, quota: 7 }, { user_id: 2, created_at: 0, type: 2, quota: 11 }, { user_id: 3, created_at: 3599, type: 2, quota: 13 }, { user_id: 3, created_at: 3600, type: 2, quota: 17 })
  await insertLogs(app.db, rows)

  await assertExact(t, app, 'deltas only')
  t.ok(await foldStatDeltas(app.db) > 0, 'the fold moved deltas')
  t.equal(await foldStatDeltas(app.db), 0, 'a second fold finds nothing')
  await assertExact(t, app, 'folded')

  await app.db.deleteFrom('logs').where('created_at', '<', T0 + 3000).execute()
  await app.db.updateTable('logs').set({ type: 5, quota: 1 }).where('user_id', '=', 2).where('created_at', '>', T0 + 20_000).execute()
  await assertExact(t, app, 'after delete and update, not folded')
  await foldStatDeltas(app.db)
  await assertExact(t, app, 'after delete and update, folded')

  const emptied = await app.db.selectFrom('logs_stat_hourly').select('hour').where('hour', '<', Math.floor((T0 + 3000) / 3600)).execute()
  t.strictSame(emptied, [], 'hours emptied by the delete leave no rollup rows behind')
  const emptiedMinutes = await app.db.selectFrom('logs_stat_minutely').select('minute').where('minute', '<', Math.floor((T0 + 3000) / 60)).execute()
  t.strictSame(emptiedMinutes, [], 'nor minutes')

  await sql`truncate logs`.execute(app.db)
  t.strictSame(await exactSums(app.db, {}), { n: 0, quota: 0 }, 'truncate empties the rollups')
})

t.test('totals: exact from the rollups, capped-then-estimated otherwise', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  await insertLogs(app.db, Array.from({ length: 30 }, (_, i) => ({ user_id: 1, created_at: T0 + i * 600, type: 2, model_name: i % 2 === 0 ? 'a' : 'b' })))
  t.strictSame(await countLogs(app.db, { userId: 1 }), { total: 30, exact: true })
  t.strictSame(await countLogs(app.db, { modelName: 'a' }), { total: 15, exact: true })
  t.strictSame(await countLogs(app.db, { startTimestamp: T0 + 600, endTimestamp: T0 + 1800 }), { total: 3, exact: true })
})

t.test('a total past the exact limit is the planner\'s estimate, flagged', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const n = COUNT_LIMITS.exactCountLimit + 50
  await app.db.insertInto('logs').columns(['user_id', 'created_at', 'type', 'model_name']).expression((eb) => eb.selectFrom(sql<{ g: number }>`generate_series(1, ${n})`.as('g'))
    .select([sql<number>`1`.as('user_id'), sql<number>`${T0} + g`.as('created_at'), sql<number>`2`.as('type'), sql<string>`'m'`.as('model_name')]))
    .execute()
  await sql`analyze logs`.execute(app.db)
  const estimated = await countLogs(app.db, { modelName: 'm' })
  t.equal(estimated.exact, false)
  t.ok(estimated.total > COUNT_LIMITS.exactCountLimit, `an estimate above the limit (${estimated.total})`)
  t.strictSame(await countLogs(app.db, { userId: 1 }), { total: n, exact: true }, 'the rollups still count exactly')
  const res = await app.inject({ url: '/api/log/self', headers: (await createUser(app.db, { role: 100 })).headers })
  t.match(res.json(), { data: { total_exact: true } })
})

t.test('folding and vacuuming the stat tables keeps answers exact', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  await insertLogs(app.db, [{ user_id: 1, created_at: T0 + 10, type: 2, quota: 5 }, { user_id: 1, created_at: T0 + 7300, type: 2, quota: 7 }])
  await foldStatDeltas(app.db)
  await vacuumStatTables(app.db, STAT_TABLES)
  t.strictSame(await exactSums(app.db, { userId: 1 }), { n: 2, quota: 12 })
})

/** `n` rows `step` seconds apart from `first`, over three users and four types, quota i. */
function spreadRows (n: number, first: number, step: number) {
  return Array.from({ length: n }, (_, i) => ({
    user_id: 1 + (i % 3), created_at: first + i * step, type: [1, 2, 2, 5][i % 4] as number, quota: i
  }))
}

t.test('a purge adjusts the rollups itself, exactly, leaving no deltas and no emptied units', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const rows = spreadRows(400, T0 - 7200, 97)
  await insertLogs(app.db, rows)
  await foldStatDeltas(app.db)
  const target = T0 + 5000
  const expectedGone = rows.filter((r) => r.created_at < target).length
  t.equal(await purgeLogsBefore(app.db, { before: target, batchSize: 7, unitMaxRows: 0 }), expectedGone)
  t.strictSame(await app.db.selectFrom('logs_stat_delta').select('minute').execute(), [], 'the purge wrote no deltas')
  await assertExact(t, app, 'after a purge')
  const stale = await app.db.selectFrom('logs_stat_minutely').select('minute').where('minute', '<', Math.floor(target / 60)).execute()
  t.strictSame(stale, [], 'minutes wholly below the target are gone from the rollups')
  // the session setting does not leak into the pooled connection
  await insertLogs(app.db, [{ user_id: 1, created_at: T0 + 50_000, type: 2, quota: 3 }])
  t.equal((await app.db.selectFrom('logs_stat_delta').select('n').execute()).length, 1, 'inserts are captured again')
})

t.test('a purge by whole days, whole hours or row by row leaves exact rollups, with deltas pending', async (t) => {
  const day0 = T0 - (T0 % 86_400) - 2 * 86_400
  const target = T0 + 5000 // mid-hour, in the third day
  const rows = spreadRows(900, day0 + 100, 331)
  const expectedGone = rows.filter((r) => r.created_at < target).length
  const batches: Record<number, number> = {}
  // 0: every row goes through row batches; 60: days (≈ 260 rows) are too big, hours (≈ 11) are not
  for (const unitMaxRows of [0, 60, 1_000_000]) {
    await t.test(`unitMaxRows ${unitMaxRows}`, async (t) => {
      const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
      // a third of the rows arrive after the fold: their sums are pending deltas during the purge
      await insertLogs(app.db, rows.filter((_, i) => i % 3 !== 0))
      await foldStatDeltas(app.db)
      await insertLogs(app.db, rows.filter((_, i) => i % 3 === 0))
      let n = 0
      const gone = await purgeLogsBefore(app.db, { before: target, batchSize: 7, unitMaxRows, onBatch: () => { n++ } })
      batches[unitMaxRows] = n
      t.equal(gone, expectedGone)
      t.strictSame(await app.db.selectFrom('logs').select('id').where('created_at', '<', target).execute(), [], 'nothing below the target is left')
      await assertExact(t, app, 'after the purge')
      while (await foldStatDeltas(app.db) > 0);
      await assertExact(t, app, 'after the purge, folded')
      const stale = await app.db.selectFrom('logs_stat_hourly_user').select('hour').where('hour', '<', Math.floor(target / 3600)).execute()
      t.strictSame(stale, [], 'hours wholly below the target are gone from the per-user rollups')
    })
  }
  t.ok(batches[1_000_000]! < batches[60]! && batches[60]! < batches[0]!, `days, then hours, take fewer batches (${JSON.stringify(batches)})`)
})

t.test('the whole hours of the day holding the target go in one batch, and the rollups stay exact', async (t) => {
  const day0 = T0 - (T0 % 86_400) - 2 * 86_400
  const target = T0 + 5000 // 15:23 UTC on the third day: fifteen whole hours of it lie below the target
  const rows = spreadRows(900, day0 + 100, 331)
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  await insertLogs(app.db, rows)
  await foldStatDeltas(app.db)
  const batches: number[] = []
  const gone = await purgeLogsBefore(app.db, { before: target, batchSize: 7, unitMaxRows: 1_000_000, onBatch: (n) => { batches.push(n) } })
  t.equal(gone, rows.filter((r) => r.created_at < target).length)
  const boundaryDay = target - (target % 86_400)
  const wholeHours = rows.filter((r) => r.created_at >= boundaryDay && r.created_at < target - (target % 3600)).length
  const days = [day0, day0 + 86_400].map((d) => rows.filter((r) => r.created_at >= d && r.created_at < d + 86_400).length)
  t.strictSame(batches.slice(0, 3), [...days, wholeHours], `a batch a day, then one for the ${wholeHours} rows of the fifteen hours (${JSON.stringify(batches)})`)
  t.ok(batches.slice(3).every((n) => n <= 7), 'then row batches in the hour holding the target')
  await assertExact(t, app, 'after the purge')
})

t.test('a purge stopped at a batch boundary leaves exact rollups, and running it again finishes it', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const rows = spreadRows(300, T0 - 7200, 97)
  await insertLogs(app.db, rows)
  await foldStatDeltas(app.db)
  const target = T0 + 20_000
  const expectedGone = rows.filter((r) => r.created_at < target).length
  const stop = new AbortController()
  let batches = 0
  const stopped = await purgeLogsBefore(app.db, {
    before: target,
    batchSize: 10,
    unitMaxRows: 0,
    signal: stop.signal,
    onBatch: () => { if (++batches === 3) stop.abort() }
  }).then(() => null, (err: unknown) => err)
  t.ok(stopped instanceof PurgeStoppedError, 'the purge stopped')
  t.equal((stopped as PurgeStoppedError).deleted, 30, 'after its third batch of 10')
  t.equal(rows.length - Number((await scan(app, {})).n), 30, 'exactly those rows are gone')
  await assertExact(t, app, 'after a stopped purge')
  t.equal(await purgeLogsBefore(app.db, { before: target, batchSize: 10, unitMaxRows: 0 }), expectedGone - 30, 'a re-run deletes the rest')
  t.equal(Number((await scan(app, { endTimestamp: target - 1 })).n), 0, 'nothing below the target is left')
  t.equal(Number((await scan(app, {})).n), rows.length - expectedGone, 'and everything from the target on is kept')
  await assertExact(t, app, 'after the re-run')
  const stale = await app.db.selectFrom('logs_stat_minutely').select('minute').where('minute', '<', Math.floor(target / 60)).execute()
  t.strictSame(stale, [], 'no emptied units are left in the rollups')
})
