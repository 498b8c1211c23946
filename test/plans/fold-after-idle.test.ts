import t from 'tap'
import { sql } from 'kysely'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { exactSums } from '../../src/queries/rollups/read.js'
import { buildTestApp } from '../helpers/app.js'

// A service left idle folds an empty logs_stat_delta over and over; then one statement writes a
// quarter of a million rows. The fold must drain that backlog: a plan kept from the empty table
// (a sequential scan testing ctid = ANY of 20,000 ctids) made every fold hit the statement
// timeout, and the backlog never drained until someone ran ANALYZE.
t.test('the fold drains a sudden backlog after idling on an empty delta table', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: 1, STAT_FOLD_INTERVAL_MS: 0, DB_STATEMENT_TIMEOUT_MS: 5000 })
  for (let i = 0; i < 10; i++) t.equal(await foldStatDeltas(app.db), 0, `idle fold ${i + 1}`)

  const T = 1_790_000_000
  await app.db.transaction().execute(async (trx) => {
    // The insert itself, with every index of logs to maintain, may take longer than a fold may.
    await sql`set local statement_timeout = 0`.execute(trx)
    await sql`insert into logs (user_id, created_at, type, quota)
      select 1 + g % 50, ${T} + (g * 13.8)::int8, 2, g % 100 from generate_series(1, 250000) g`.execute(trx)
  })
  const { rows: [pending] } = await sql<{ n: number }>`select count(*)::int8 as n from logs_stat_delta`.execute(app.db)
  t.ok(pending!.n > 100_000, `a backlog of ${pending!.n} deltas`)

  let folds = 0
  for (let moved = -1; moved !== 0; folds++) moved = await foldStatDeltas(app.db)
  t.ok(folds > 1, `drained in ${folds} folds`)
  const { rows: [left] } = await sql<{ n: number }>`select count(*)::int8 as n from logs_stat_delta`.execute(app.db)
  t.equal(left!.n, 0, 'no delta left')
  t.strictSame(await exactSums(app.db, { startTimestamp: T, endTimestamp: T + 40 * 86_400 }), { n: 250_000, quota: 250_000 / 100 * 4950 }, 'the rollups hold every row')
})
