// The connection drops inside a purge batch (pg_terminate_backend on the purge's backend while the
// batch waits on a row lock): the purge answers a 503 envelope, the batch is not half written, and
// a re-run finishes with exactly the rows below the target gone and every stat exact.
import t from 'tap'
import pg from 'pg'
import { sql } from 'kysely'
import { buildApp } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { createTestDatabase, createUser, testConfig } from '../helpers/app.js'
import { assertRerunFinishes, assertRollupsExact, assertRowsKept, assertStatRoutesExact, assertUnavailable, blockedBy, rowsById, until, zeroRollupRows } from '../helpers/faults.js'

const DAY = 86_400
const DAY0 = 1_699_920_000 // a UTC midnight
// Mid-hour in the fourth day: whole days, whole hours and a row-by-row tail lie below it.
const TARGET = DAY0 + 3 * DAY + 5 * 3600 + 1234

async function connect (t: { teardown: (fn: () => unknown) => void }, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

interface Variant {
  name: string
  config: Partial<Config>
  /** the created_at of the row the other session locks: the batch that reaches it waits */
  lockedAt: number
}

const variants: Variant[] = [
  // Row by row in batches of 10: the batch waits inside its DELETE … RETURNING and rollup upserts.
  { name: 'a row batch', config: { PURGE_BATCH_SIZE: 10, PURGE_UNIT_MAX_ROWS: 0 }, lockedAt: DAY0 + DAY + 7 * 3600 },
  // Whole days: the second day's one-statement delete waits, in its repeatable-read transaction,
  // holding the rollup write lock at the session level.
  { name: 'a whole-day batch', config: { PURGE_BATCH_SIZE: 10, PURGE_UNIT_MAX_ROWS: 100_000 }, lockedAt: DAY0 + DAY + 7 * 3600 }
]

for (const variant of variants) {
  t.test(`the purge's connection is terminated inside ${variant.name}`, { timeout: 60_000 }, async (t) => {
    const url = await createTestDatabase(t)
    const app = await buildApp({ ...testConfig({ STAT_FOLD_INTERVAL_MS: 50, ...variant.config }), DATABASE_URL: url })
    t.teardown(() => app.close())
    const admin = await createUser(app.db, { role: 10 })
    const user = await createUser(app.db)
    // ~1000 rows over four and a half days, 3 users, 3 types; half folded before the purge,
    // the rest left as pending deltas.
    const insert = (parity: number) => sql`
      insert into logs (user_id, created_at, type, quota, prompt_tokens, completion_tokens, model_name)
      select (array[${admin.id}, ${user.id}, ${user.id + 1}]::int[])[1 + i % 3], ${DAY0 + 60} + i * 397, (array[1, 2, 2, 5])[1 + i % 4],
        i * 7 % 1000, i % 50, i % 30, 'm' || (i % 4)
      from generate_series(0, 999) i where i % 2 = ${parity}`.execute(app.db)
    await insert(0)
    t.ok(await until(async () => (await app.db.selectFrom('logs_stat_delta').select('n').execute()).length === 0), 'the first half is folded')
    await insert(1)
    const before = await rowsById(app.db)
    const { rows: [counts] } = await sql<{ below: string, locked: string }>`
      select count(*) filter (where created_at < ${TARGET}) as below,
             (select id from logs where created_at >= ${variant.lockedAt} order by created_at limit 1) as locked
      from logs`.execute(app.db)
    const below = Number(counts?.below)

    const locker = await connect(t, url)
    const observer = await connect(t, url)
    await locker.query('begin')
    await locker.query('select id from logs where id = $1 for update', [counts?.locked])
    let locked = true
    t.teardown(async () => { if (locked) await locker.query('rollback') })

    await t.test('the purge answers 503 and leaves no half-written batch', { timeout: 30_000 }, async (t) => {
      const purge = app.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: String(TARGET) } })
      const [pid] = await blockedBy(observer, locker)
      await observer.query('select pg_terminate_backend($1)', [pid])
      assertUnavailable(t, await purge, '删除日志失败', 'the purge')
      t.equal(app.maintenance.status().purge.running, false, 'no purge is under way any more')
      await locker.query('rollback')
      locked = false

      const left = await assertRowsKept(t, app.db, before, TARGET, 'after the lost connection')
      t.ok(left > 0 && left < below, `earlier batches are committed, the locked one is not (${below - left} of ${below} rows deleted)`)
      const { rows: [lockedRow] } = await sql<{ n: string }>`select count(*) as n from logs where id = ${counts?.locked}`.execute(app.db)
      t.equal(Number(lockedRow?.n), 1, 'the row the batch waited on is still there')
      await assertRollupsExact(t, app.db, 'after the lost connection')
    })

    await t.test('a re-run finishes it, exactly', { timeout: 30_000 }, async (t) => {
      const left = Number((await sql<{ n: string }>`select count(*) as n from logs where created_at < ${TARGET}`.execute(app.db)).rows[0]?.n)
      await assertRerunFinishes(t, app, admin.headers, before, below, TARGET, left)
      await assertStatRoutesExact(t, app, admin, user, 'after the re-run')
      t.strictSame(await zeroRollupRows(app.db), { logs_stat_minutely: 0, logs_stat_hourly: 0, logs_stat_hourly_user: 0, logs_stat_daily_user: 0 }, 'no emptied units are left in the rollups')
    })

    await t.test('the fold goes on: the rollup write lock went with the connection', { timeout: 30_000 }, async (t) => {
      await sql`insert into logs (user_id, created_at, type, quota) values (${user.id}, ${TARGET + 10}, 2, 11)`.execute(app.db)
      t.ok(await until(async () => (await app.db.selectFrom('logs_stat_delta').select('n').execute()).length === 0), 'a new row is folded')
      await assertRollupsExact(t, app.db, 'after the fold')
    })
  })
}
