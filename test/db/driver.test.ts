import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { sql } from 'kysely'
import pg from 'pg'
import { createDb, createPool } from '../../src/db/pool.js'
import { buildTestApp, createTestDatabase, insertLogs } from '../helpers/app.js'

// The driver behind app.db (src/db/driver.ts): what Kysely's own PostgreSQL driver does, plus
// each statement's plan policy.

t.test('the driver', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: 1 })
  await insertLogs(app.db, [{ user_id: 1, created_at: 10, type: 2 }, { user_id: 1, created_at: 20, type: 2 }])

  t.test('reports the rows a write touched', async (t) => {
    const result = await app.db.updateTable('logs').set({ quota: 5 }).where('user_id', '=', 1).executeTakeFirst()
    t.equal(result.numUpdatedRows, 2n)
  })

  t.test('a transaction an error aborted does not commit, even when the error was swallowed', async (t) => {
    await t.rejects(app.db.transaction().execute(async (trx) => {
      await trx.updateTable('logs').set({ quota: 7 }).execute()
      await sql`select 1 / 0`.execute(trx).catch(() => {})
    }), /aborted/)
    const { rows } = await sql<{ quota: number }>`select max(quota) as quota from logs`.execute(app.db)
    t.equal(rows[0]?.quota, 5, 'the update was rolled back')
  })

  t.test('the connection is usable after a failed statement', async (t) => {
    await t.rejects(sql`select * from no_such_table`.execute(app.db), /no_such_table/)
    t.strictSame((await sql<{ one: number }>`select 1 as one`.execute(app.db)).rows, [{ one: 1 }])
  })

  t.test('runs transactions at the isolation level asked for', async (t) => {
    const level = await app.db.transaction().setIsolationLevel('repeatable read').execute(async (trx) =>
      (await sql<{ l: string }>`select current_setting('transaction_isolation') as l`.execute(trx)).rows[0]?.l)
    t.equal(level, 'repeatable read')
  })

  t.test('says plainly that it does not stream', async (t) => {
    const rows = app.db.selectFrom('logs').select('id').stream()
    await t.rejects(rows.next(), /streaming is not supported/)
  })
})

t.test('a connection lost between two statements of a transaction fails the next one, not the process', async (t) => {
  const url = await createTestDatabase(t)
  const db = createDb(createPool({ connectionString: url, max: 2 }))
  t.teardown(() => db.destroy())
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  t.teardown(() => admin.end())
  const failed = await db.transaction().execute(async (trx) => {
    const { rows: [me] } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)
    await admin.query('select pg_terminate_backend($1)', [me?.pid])
    // The connection ends while this transaction holds it and runs no statement: the client's
    // 'error' has no pool listener then.
    for (let i = 0; i < 100; i++) {
      const { rows } = await admin.query('select 1 from pg_stat_activity where pid = $1', [me?.pid])
      if (rows.length === 0) break
      await sleep(10)
    }
    await sleep(50)
    await sql`select 1`.execute(trx)
  }).then(() => null, (err: unknown) => err)
  t.ok(failed instanceof Error, 'the next statement failed')
  t.strictSame((await sql<{ one: number }>`select 1 as one`.execute(db)).rows, [{ one: 1 }], 'and the pool serves the next query on a new connection')
})
