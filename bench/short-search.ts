// Short search keywords (no trigram: "龘", "ab") at full table size: the service's chunked scan
// against the one-statement ILIKE a naive service runs, in the same run on the same database.
//
//   node --import tsx bench/short-search.ts --database-url postgres://…/bench10m [--runs 3] [--out FILE]
//
// Two marker rows carry a keyword no seeded row holds: one older than every seeded row (the
// worst case, the whole table read to find it) for a user of the seed, and one among the newest.
// Both are deleted at the end.
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { sql } from 'kysely'
import { createDb, createPool } from '../src/db/pool.js'
import { searchAdminLogs, searchUserLogs, SHORT_KEYWORD_SCAN, type SearchRequest } from '../src/queries/logs/search.js'
import { redactUrl } from './options.js'

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    runs: { type: 'string', default: '3' },
    out: { type: 'string' }
  }
})
const url = values['database-url']
const runs = Number(values.runs)
if (url === undefined || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: node --import tsx bench/short-search.ts --database-url URL [--runs N] [--out FILE]')
  process.exit(2)
}

const pool = createPool({ connectionString: url, max: 2, statementTimeoutMs: 0 })
const db = createDb(pool)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
const round = (n: number) => Math.round(n * 10) / 10

async function time<T> (fn: () => Promise<T>): Promise<{ ms: number, value: T }> {
  const start = performance.now()
  const value = await fn()
  return { ms: performance.now() - start, value }
}

/** What a service without the scan runs: one statement over every row in scope, no timeout. */
async function naive (keyword: string, userId?: number): Promise<number> {
  const scope = userId === undefined ? sql`` : sql`user_id = ${userId} and`
  const { rows } = await sql<{ id: number }>`select id from logs where ${scope} content ilike ${'%' + keyword + '%'}
    order by created_at desc, id desc limit 100`.execute(db)
  return rows.length
}

const stats = await sql<{ rows: number, oldest: number, newest: number }>`
  select count(*)::int8 as rows, min(created_at) as oldest, max(created_at) as newest from logs`.execute(db)
const { rows: total, oldest, newest } = stats.rows[0]!
const heavy = await sql<{ user_id: number, n: number }>`
  select user_id, count(*)::int8 as n from logs group by user_id order by n desc limit 1`.execute(db)
const user = heavy.rows[0]!
console.log(`${total.toLocaleString('en-US')} rows; heaviest user ${user.user_id} with ${user.n.toLocaleString('en-US')}`)

const RARE = '龘'
// Markers an interrupted run left behind.
await sql`delete from logs where content in (${`oldest marker ${RARE}`}, ${`newest marker ${RARE}`})`.execute(db)
const markers = await sql<{ id: number }>`insert into logs (user_id, created_at, type, content) values
  (${user.user_id}, ${oldest - 86_400}, 2, ${`oldest marker ${RARE}`}),
  (${user.user_id}, ${newest}, 2, ${`newest marker ${RARE}`}) returning id`.execute(db)
await sql`analyze logs`.execute(db)

interface Case { name: string, keyword: string, userId?: number }
const cases: Case[] = [
  { name: 'rare short keyword, site-wide (oldest match a full table back)', keyword: RARE },
  { name: 'rare short keyword, heaviest user', keyword: RARE, userId: user.user_id },
  // Two characters that every Chinese consume row of the seed holds ("ratio"): 100 matches in the newest chunk.
  { name: 'common short keyword, site-wide', keyword: '倍率' },
  { name: 'common short keyword, heaviest user', keyword: '倍率', userId: user.user_id }
]

const results = []
try {
  for (const c of cases) {
    const req: SearchRequest = { keyword: c.keyword, userId: c.userId, limit: 100 }
    const run = async (scan = SHORT_KEYWORD_SCAN) => await (c.userId === undefined ? searchAdminLogs(db, { ...req, scan }) : searchUserLogs(db, { ...req, scan }))
    const naiveMs: number[] = []
    const unboundedMs: number[] = []
    const budgetMs: number[] = []
    let naiveFound = 0
    let unboundedFound = 0
    let budget = { found: 0, complete: true }
    for (let i = 0; i < runs; i++) {
      const n = await time(async () => await naive(c.keyword, c.userId))
      naiveMs.push(n.ms)
      naiveFound = n.value
      const u = await time(async () => await run({ ...SHORT_KEYWORD_SCAN, budgetMs: 3_600_000 }))
      unboundedMs.push(u.ms)
      unboundedFound = u.value.items.length
      const b = await time(async () => await run())
      budgetMs.push(b.ms)
      budget = { found: b.value.items.length, complete: b.value.complete }
    }
    const row = {
      case: c.name,
      keyword: c.keyword,
      naive_ms: round(median(naiveMs)),
      naive_found: naiveFound,
      scan_unbounded_ms: round(median(unboundedMs)),
      scan_unbounded_found: unboundedFound,
      scan_vs_naive: Math.round(median(unboundedMs) / median(naiveMs) * 100) / 100,
      default_budget_ms: round(median(budgetMs)),
      default_budget_found: budget.found,
      default_budget_complete: budget.complete
    }
    results.push(row)
    console.log(JSON.stringify(row))
  }
} finally {
  await sql`delete from logs where id in (${sql.join(markers.rows.map((r) => r.id))})`.execute(db)
  await db.destroy()
}

const report = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  database: redactUrl(url),
  rows: total,
  scan: SHORT_KEYWORD_SCAN,
  runs,
  results
}
console.log('\n| case | naive one statement | chunked scan, no budget | ratio | default budget (2 s) |')
console.log('|---|---:|---:|---:|---|')
for (const r of results) {
  console.log(`| ${r.case} | ${r.naive_ms} ms (${r.naive_found}) | ${r.scan_unbounded_ms} ms (${r.scan_unbounded_found}) | ${r.scan_vs_naive}× | ${r.default_budget_ms} ms, ${r.default_budget_found} found, complete ${r.default_budget_complete} |`)
}
if (values.out !== undefined) writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n')
