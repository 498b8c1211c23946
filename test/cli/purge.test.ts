// log-service purge: the API's chunked purge from the CLI; exact rows, exact rollups, Ctrl-C, the lock.
import t from 'tap'
import pg from 'pg'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../../src/db/types.js'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { keyColumns, ROLLUPS } from '../../src/queries/rollups/model.js'
import { exactSums } from '../../src/queries/rollups/read.js'
import { cli, cliDatabase } from '../helpers/cli.js'
import { insertLogs } from '../helpers/app.js'

const T = 1_700_000_000 // 2023-11-14T22:13:20Z, 800 s into its hour
const T_ISO = '2023-11-14T22:13:20Z'

/** Three days of rows before T (whole days, whole hours, and the hour holding T) and some after it. */
function history () {
  const rows = []
  for (let at = T - 3 * 86_400; at < T + 7200; at += 1117) {
    rows.push({ user_id: 1 + (at % 3), created_at: at, type: at % 5 === 0 ? 1 : 2, quota: at % 97, prompt_tokens: at % 13, completion_tokens: at % 7 })
  }
  rows.push({ user_id: 1, created_at: T - 1, type: 2, quota: 5 }, { user_id: 2, created_at: T, type: 2, quota: 7 })
  return rows
}

async function createdAtBelow (db: Kysely<Database>, before: number): Promise<number> {
  const { rows: [r] } = await sql<{ n: number }>`select count(*)::int8 as n from logs where created_at < ${before}`.execute(db)
  return Number(r?.n)
}

async function ids (db: Kysely<Database>): Promise<number[]> {
  return (await db.selectFrom('logs').select('id').orderBy('id').execute()).map((r) => r.id)
}

/**
 * Rows of each rollup that differ from the same sums computed from logs (after folding the deltas):
 * zero when every rollup is exact.
 */
async function rollupMismatches (db: Kysely<Database>): Promise<Record<string, number>> {
  while (await foldStatDeltas(db) > 0) { /* fold everything */ }
  const out: Record<string, number> = {}
  for (const r of ROLLUPS) {
    const keys = keyColumns(r)
    const fromLogs = keys.map((k) => (k === r.unit ? `(created_at / ${r.seconds})::int8` : `${k}::int8`)).join(', ')
    const fromRollup = keys.map((k) => `${k}::int8`).join(', ')
    const groupBy = keys.map((_, i) => i + 1).join(', ')
    const { rows: [row] } = await sql<{ n: number }>`
      with expected as (
        select ${sql.raw(fromLogs)}, count(*)::int8, sum(quota)::int8, sum(prompt_tokens)::int8, sum(completion_tokens)::int8
        from logs where created_at >= ${r.seconds} group by ${sql.raw(groupBy)}
      ), actual as (
        select ${sql.raw(fromRollup)}, n::int8, quota::int8, prompt_tokens::int8, completion_tokens::int8
        from ${sql.table(r.table)} where ${sql.ref(r.unit)} >= 1 and (n, quota, prompt_tokens, completion_tokens) <> (0, 0, 0, 0)
      )
      select (select count(*) from (select * from expected except all select * from actual) a)
           + (select count(*) from (select * from actual except all select * from expected) b) as n`.execute(db)
    out[r.table] = Number(row?.n)
  }
  return out
}

const exact = Object.fromEntries(ROLLUPS.map((r) => [r.table, 0]))

t.test('deletes exactly the rows below --before, and the rollups stay exact', async (t) => {
  const { url, db } = await cliDatabase(t)
  await insertLogs(db, history())
  await foldStatDeltas(db)
  const below = await createdAtBelow(db, T)
  const keep = (await db.selectFrom('logs').select('id').where('created_at', '>=', T).orderBy('id').execute()).map((r) => r.id)
  t.ok(below > 200 && keep.length > 5, 'rows on both sides of the target')

  const r = await cli(['purge', '--before', T_ISO, '--database-url', url])
  t.equal(r.code, 0, 'exit code 0')
  t.equal(r.stdout, `purged ${below} rows older than ${T_ISO} (${T})\n`)
  t.match(r.stderr, `purging ${below} rows older than`, 'the estimate up front is the exact count here')
  t.match(r.stderr, /purge: [0-9]+ \/ [0-9]+ rows/, 'progress lines without a terminal')
  t.strictSame(await ids(db), keep, 'exactly the rows at or after the target stay')
  t.strictSame(await rollupMismatches(db), exact, 'every rollup equals the sums of the rows left')
  const { rows: [left] } = await sql<{ n: number, quota: number }>`select count(*)::int8 as n, coalesce(sum(quota), 0)::int8 as quota from logs`.execute(db)
  t.strictSame(await exactSums(db, {}), { n: Number(left?.n), quota: Number(left?.quota) }, 'the stat reads the totals of the rows left')

  const again = await cli(['purge', '--before', String(T), '--database-url', url])
  t.equal(again.code, 0)
  t.equal(again.stdout, `purged 0 rows older than ${T_ISO} (${T})\n`, 'unix seconds work too; nothing left to purge')
})

t.test('stopped at a batch boundary by its signal (Ctrl-C), then run again to finish', async (t) => {
  const { url, db } = await cliDatabase(t)
  // One hour, row by row in batches of 2.
  await insertLogs(db, Array.from({ length: 10 }, (_, i) => ({ user_id: 1 + (i % 2), created_at: T - 600 + i, type: 2, quota: i + 1 })))
  await insertLogs(db, [{ user_id: 1, created_at: T + 5, type: 2, quota: 100 }])
  const env = { PURGE_BATCH_SIZE: '2', PURGE_UNIT_MAX_ROWS: '0' }

  const controller = new AbortController()
  const stopped = await cli(['purge', '--before', String(T), '--database-url', url], {
    env,
    signal: controller.signal,
    // the first progress line comes after the first batch
    onStderr: (text) => { if (/purge: /.test(text)) controller.abort() }
  })
  t.equal(stopped.code, 130, 'exit code 130, as for Ctrl-C')
  t.match(stopped.stderr, /stopped after 2 rows; run it again to finish\n$/)
  t.notMatch(stopped.stderr, /^error:/m)
  t.equal(stopped.stdout, '')
  t.equal(await createdAtBelow(db, T), 8, 'one batch of 2 went, the rest is still there')
  t.strictSame(await rollupMismatches(db), exact, 'the rollups are exact after a stopped purge')

  const rest = await cli(['purge', '--before', String(T), '--database-url', url], { env })
  t.equal(rest.code, 0, 'the second run finishes')
  t.match(rest.stdout, /^purged 8 rows/)
  t.equal(await createdAtBelow(db, T), 0)
  t.strictSame((await db.selectFrom('logs').select('quota').execute()).map((r) => r.quota), [100])
  t.strictSame(await rollupMismatches(db), exact)
})

t.test('another purge holding the lock: exit 1 and nothing deleted', async (t) => {
  const { url, db } = await cliDatabase(t)
  await insertLogs(db, [{ user_id: 1, created_at: T - 10, type: 2 }])
  const other = new pg.Client({ connectionString: url })
  await other.connect()
  t.teardown(() => other.end())
  await other.query("select pg_advisory_lock(hashtextextended('log-service:history-purge', 0))")

  const r = await cli(['purge', '--before', String(T), '--database-url', url])
  t.equal(r.code, 1)
  t.match(r.stderr, /error: another purge is running/)
  t.equal(await createdAtBelow(db, T), 1)
})

t.test('bad --before values are bad usage (exit 2), named', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--before', '2026-02-30'], /argument '2026-02-30' is invalid\. not a valid calendar date/],
    [['--before', 'yesterday'], /argument 'yesterday' is invalid\. not a date/],
    [['--before', '2026-01-01T24:00'], /not a valid calendar date/],
    [['--before', '0'], /--before must be after 1970/],
    [[], /required option '--before <time>' not specified/]
  ]
  for (const [args, message] of cases) {
    // No database is reached: the URL leads nowhere.
    const r = await cli(['purge', ...args, '--database-url', 'postgres://nobody@127.0.0.1:1/none'])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, message)
  }
})
