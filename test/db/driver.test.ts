import t from 'tap'
import { sql } from 'kysely'
import { buildTestApp, insertLogs } from '../helpers/app.js'

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
