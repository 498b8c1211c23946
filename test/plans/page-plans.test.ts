import t from 'tap'
import { sql } from 'kysely'
import { adminPage, userPage, type PageRequest } from '../../src/queries/logs/page.js'
import type { LogFilter } from '../../src/queries/logs/filter.js'
import { pageWithTotal } from '../../src/queries/logs/total.js'
import { buildTestApp } from '../helpers/app.js'

// Properties of the plans the list statements get, read from EXPLAIN's JSON, never its text.

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, Plans?: PlanNode[] }

function nodes (plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)]
}

t.test('a page is read in list order from an index: no sort, however deep the cursor', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  await app.db.insertInto('logs').columns(['user_id', 'token_id', 'created_at', 'type']).expression((eb) => eb.selectFrom(sql<{ g: number }>`generate_series(1, 30000)`.as('g'))
    .select([sql<number>`1 + g % 50`.as('user_id'), sql<number>`1 + g % 200`.as('token_id'), sql<number>`1800000000 + g * 7`.as('created_at'), sql<number>`1 + g % 5`.as('type')]))
    .execute()
  await sql`analyze logs`.execute(app.db)

  const cases: Array<[string, LogFilter, PageRequest]> = [
    ['a user, page 1', { userId: 7 }, { page: 1, pageSize: 20 }],
    ['a user, by cursor', { userId: 7 }, { page: 1, pageSize: 20, after: { createdAt: 1_800_100_000, id: 14_000 } }],
    ['a key', { tokenId: 9 }, { page: 1, pageSize: 20 }],
    ['the site, page 1', {}, { page: 1, pageSize: 20 }],
    ['the site, by cursor', {}, { page: 1, pageSize: 20, after: { createdAt: 1_800_100_000, id: 14_000 } }],
    ['a user and a window', { userId: 7, startTimestamp: 1_800_010_000, endTimestamp: 1_800_150_000 }, { page: 1, pageSize: 20 }]
  ]
  for (const [label, f, page] of cases) {
    for (const shape of [userPage, adminPage]) {
      const [row] = await shape.build(app.db, f, page).explain<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>('json')
      const all = nodes(row!['QUERY PLAN'][0]!.Plan)
      t.notOk(all.some((n) => n['Node Type'] === 'Sort' || n['Node Type'] === 'Incremental Sort'), `${label} (${shape.label}): no sort`)
      t.notOk(all.some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'logs'), `${label} (${shape.label}): no sequential scan of logs`)
    }
  }
})

t.test('the plan shape a filtered list sets ends with its transaction', async (t) => {
  // One connection, so that a setting leaking out of the counting transaction would show.
  const app = await buildTestApp(t, { DB_POOL_MAX: 1, STAT_FOLD_INTERVAL_MS: 0 })
  const current = async () => (await sql<{ i: string, b: string }>`select current_setting('enable_indexscan') as i, current_setting('enable_bitmapscan') as b`.execute(app.db)).rows[0]
  // Two GIN columns: the list probes, then sets a plan shape for the rest of its transaction.
  const result = await pageWithTotal(app.db, { channel: 1, modelName: 'a' }, { page: 1, pageSize: 20 }, adminPage)
  t.strictSame(result, { items: [], total: { total: 0, exact: true } })
  t.strictSame(await current(), { i: 'on', b: 'on' }, 'the planner settings are back to the defaults')
})
