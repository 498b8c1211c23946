import t from 'tap'
import { sql } from 'kysely'
import { credentialDigest, findTokenByKey, findUserByAccessToken } from '../../src/queries/auth.js'
import { listUserLogs, userPage } from '../../src/queries/logs/page.js'
import { statLogs } from '../../src/queries/logs/stat.js'
import { pageWithTotal } from '../../src/queries/logs/total.js'
import { buildTestApp, createApiKey, createUser } from '../helpers/app.js'

// The hot statements run as prepared statements and keep their generic plans: nothing is planned
// per request. Each is found in pg_prepared_statements by the label its query declares
// (db/plan.ts), so this fails when a statement loses its marker, or its generic plan.
t.test('hot statements keep their generic plans', async (t) => {
  // One connection, so that pg_prepared_statements shows every statement the calls ran.
  const app = await buildTestApp(t, { DB_POOL_MAX: 1, STAT_FOLD_INTERVAL_MS: 0 })
  // Enough rows that a plan for any LIMIT or any bound would be dear: PostgreSQL then keeps
  // planning per call unless the generic plan is as cheap as a custom one.
  await app.db.insertInto('logs').columns(['user_id', 'token_id', 'created_at', 'type']).expression((eb) => eb.selectFrom(sql<{ g: number }>`generate_series(1, 40000)`.as('g'))
    .select([sql<number>`1 + g % 2`.as('user_id'), sql<number>`1 + g % 2`.as('token_id'), sql<number>`1800000000 + g * 60`.as('created_at'), sql<number>`2`.as('type')]))
    .execute()
  await sql`analyze logs`.execute(app.db)
  const user = await createUser(app.db)
  const key = await createApiKey(app.db, user.id)

  for (let i = 0; i < 12; i++) {
    await pageWithTotal(app.db, { userId: 1 + (i % 2) }, { page: 1, pageSize: 20 }, userPage) // /self
    await listUserLogs(app.db, { tokenId: 1 + (i % 2) }, { page: 1, pageSize: 20 }) // /token
    await statLogs(app.db, { userId: 1 + (i % 2), type: 0 }, 1_800_002_000) // /self/stat of all types, over all time
    await findUserByAccessToken(app.db, credentialDigest(user.token))
    await findTokenByKey(app.db, credentialDigest(key.key))
  }

  const { rows } = await sql<{ name: string, generic_plans: number, custom_plans: number }>`
    select name, generic_plans, custom_plans from pg_prepared_statements`.execute(app.db)
  for (const label of ['user-page-with-total', 'user-page', 'rollup-sums', 'stat-recent', 'auth-user', 'auth-key']) {
    const statement = rows.find((r) => r.name.startsWith(`${label}:`) && Number(r.generic_plans) + Number(r.custom_plans) >= 12)
    if (statement === undefined) {
      t.fail(`${label}: ran as a prepared statement (found ${rows.map((r) => r.name).join(', ')})`)
      continue
    }
    t.ok(Number(statement.custom_plans) <= 5, `${label}: planned at most the first five times (${statement.custom_plans})`)
    t.ok(Number(statement.generic_plans) >= 7, `${label}: then its generic plan (${statement.generic_plans})`)
  }
})

t.test('statements whose best plan depends on the values are planned per call', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: 1, STAT_FOLD_INTERVAL_MS: 0 })
  for (let i = 0; i < 3; i++) {
    await listUserLogs(app.db, { userId: 1, modelName: 'm' }, { page: 1, pageSize: 20 })
    await statLogs(app.db, { userId: 1, type: 2 }, 1_800_000_000)
  }
  const { rows } = await sql<{ name: string }>`select name from pg_prepared_statements`.execute(app.db)
  t.strictSame(rows.filter((r) => /^(user-page|stat-recent|stat-quota):/.test(r.name)), [], 'no filtered page or stat was prepared')
})
