// The stat fold meets a table that went from empty to a great many rows in one statement while the
// app runs: it catches up by itself, no request fails meanwhile, and every stat is exact after.
// 150k rows by default: on the shared 2-core test machine one statement writes ~5-7k rows a second
// (nine indexes, two of them GIN, and the stat trigger), so a million took over three minutes.
// FAULTS_FOLD_ROWS=1000000 runs the full million (the timeout grows with it).
import t from 'tap'
import pg from 'pg'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp } from '../../src/app.js'
import { createTestDatabase, createUser, testConfig } from '../helpers/app.js'
import { assertRollupsExact, assertStatRoutesExact, until } from '../helpers/faults.js'

const ROWS = Number(process.env.FAULTS_FOLD_ROWS ?? 150_000)
const DAY0 = 1_699_920_000 // a UTC midnight
const SPAN = 10 * 86_400 // the rows' created_at spread over ten days

t.test(`${ROWS} rows in one statement: the fold catches up, no request fails meanwhile`, { timeout: 60_000 + ROWS / 2 }, async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildApp({ ...testConfig({ STAT_FOLD_INTERVAL_MS: 250 }), DATABASE_URL: url })
  t.teardown(() => app.close())
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  t.equal((await app.db.selectFrom('logs').select('id').execute()).length, 0, 'logs starts empty')

  // Readers all along: the stats, the lists and their totals, a user's and the site's.
  const reads: Array<{ url: string, headers: Record<string, string>, query: Record<string, string> }> = [
    { url: '/api/log/stat', headers: admin.headers, query: { type: '0', start_timestamp: String(DAY0 - 1000), end_timestamp: String(DAY0 + SPAN + 1000) } },
    { url: '/api/log/stat', headers: admin.headers, query: { start_timestamp: String(DAY0 + 3600 + 17), end_timestamp: String(DAY0 + 5 * 86_400 - 3) } },
    { url: '/api/log/self/stat', headers: user.headers, query: { type: '0' } },
    { url: '/api/log/', headers: admin.headers, query: { type: '2' } },
    { url: '/api/log/self', headers: user.headers, query: {} }
  ]
  const failures: string[] = []
  let answered = 0
  const reading = { on: true }
  const readers = (async () => {
    for (let i = 0; reading.on; i++) {
      const r = reads[i % reads.length]!
      const res: LightMyRequestResponse = await app.inject({ url: r.url, headers: r.headers, query: r.query })
      answered++
      if (res.statusCode !== 200) failures.push(`${r.url} ${JSON.stringify(r.query)}: ${res.statusCode} ${res.body}`)
    }
  })()

  const writer = new pg.Client({ connectionString: url })
  await writer.connect()
  t.teardown(() => writer.end())
  const answeredBefore = answered
  const foldedBefore = app.maintenance.status().fold.deltasFolded
  const { rowCount } = await writer.query(`
    insert into logs (user_id, created_at, type, quota, prompt_tokens, completion_tokens, model_name, token_name)
    select (array[${admin.id}, ${user.id}, ${user.id + 1}, ${user.id + 2}, ${user.id + 3}]::int[])[1 + i % 5],
      ${DAY0} + (i::int8 * 7919) % ${SPAN}, (array[1, 2, 2, 5])[1 + i % 4],
      i % 1013, i % 97, i % 31, 'model-' || (i % 7), 'token-' || (i % 3)
    from generate_series(0, ${ROWS - 1}) i`)
  t.equal(rowCount, ROWS, 'written in one statement')
  t.ok(answered > answeredBefore, `requests were answered while it was written (${answered - answeredBefore})`)

  t.ok(await until(async () => {
    const { rows: [left] } = await writer.query<{ n: string }>('select count(*) as n from logs_stat_delta')
    return Number(left?.n) === 0
  }, 600, 100), 'the fold catches up by itself')
  // The statement's trigger wrote one delta row per (user, minute, type) it touched.
  const { rows: [groups] } = await writer.query<{ n: string }>('select count(*) as n from (select distinct user_id, created_at / 60, type from logs) g')
  t.equal(app.maintenance.status().fold.deltasFolded - foldedBefore, Number(groups?.n), `by folding every delta row (${groups?.n})`)
  t.equal(app.maintenance.status().fold.lastError, null, 'without a failed run')
  const answeredAfterFold = answered
  t.ok(await until(() => answered > answeredAfterFold + reads.length), 'the readers go on')
  reading.on = false
  await readers
  t.strictSame(failures, [], `no request failed meanwhile (${answered} answered)`)

  await assertRollupsExact(t, app.db, 'after the fold')
  await assertStatRoutesExact(t, app, admin, user, 'after the fold')
})
