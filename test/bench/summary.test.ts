import t from 'tap'
import type { LoadStats } from '../../bench/load.js'
import { parseCount, parseOptions, selected, redactUrl, UsageError } from '../../bench/options.js'
import {
  formatTable, ilikeCheck, purgeChecks, rssCheck, summariseEndpoints,
  type EndpointResult, type IlikeResult, type PurgeResult
} from '../../bench/summary.js'
import { TARGETS } from '../../bench/endpoints.js'

function stats (over: Partial<LoadStats> = {}): LoadStats {
  return {
    requests: 1000,
    durationS: 1,
    reqPerSec: 1000,
    meanMs: 5,
    p50Ms: 4,
    p90Ms: 8,
    p99Ms: 12,
    maxMs: 30,
    ok: 1000,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statusCodes: { 200: 1000 },
    ...over
  }
}

const result = (name: keyof typeof TARGETS, s: LoadStats | null, skipped?: string): EndpointResult =>
  ({ name, server: name === 'static' || name === 'naive' ? 'baselines' : 'service', target: TARGETS[name], stats: s, ...(skipped === undefined ? {} : { skipped }) })

t.test('ratios to the naive baseline and verdicts', async (t) => {
  const rows = summariseEndpoints([
    result('static', stats({ reqPerSec: 20_000 })),
    result('naive', stats({ reqPerSec: 4000 })),
    result('self_list', stats({ reqPerSec: 4400, p99Ms: 30 })),
    result('token_logs', stats({ reqPerSec: 3000, p99Ms: 30 })),
    result('self_list_cursor_deep', stats({ reqPerSec: 5000, p99Ms: 25 })),
    result('admin_stat_30d', stats({ p99Ms: 50 })),
    result('admin_list', stats({ non2xx: 3, p99Ms: 10 })),
    result('self_search_rare', null, 'no rare keyword')
  ])
  const by = Object.fromEntries(rows.map((r) => [r.name, r]))

  t.match(by.static, { naiveRatio: 5, pass: null, failures: [] }, 'a baseline is not judged')
  t.match(by.naive, { naiveRatio: 1, pass: null })
  t.match(by.self_list, { naiveRatio: 1.1, pass: true, failures: [] })
  t.match(by.token_logs, { naiveRatio: 0.75, pass: false, failures: ['0.75x naive < 1x'] })
  t.match(by.self_list_cursor_deep, { pass: false, failures: ['p99 25 ms > 20 ms'] })
  t.match(by.admin_stat_30d, { pass: true }, 'a p99 equal to the target passes')
  t.match(by.admin_list, { errors: 3, pass: false, failures: ['3 errors'] })
  t.match(by.self_search_rare, { reqPerSec: null, pass: null, failures: ['skipped: no rare keyword'] })

  const table = formatTable(rows, [])
  t.match(table, /self_list\s+4,400\s+4\.00\s+30\.00\s+0\s+1\.10x\s+p99<=50ms, >=1x naive\s+PASS/)
  t.match(table, /token_logs: 0\.75x naive < 1x/)
  t.match(table, /self_search_rare\s+-\s+-\s+-\s+-\s+-\s+p99<=50ms\s+skipped/)
})

t.test('without a naive run a ratio target is undecided', async (t) => {
  const [row] = summariseEndpoints([result('self_list', stats({ p99Ms: 10 }))])
  t.match(row, { naiveRatio: null, pass: null, failures: [] })
  const [failing] = summariseEndpoints([result('self_list', stats({ p99Ms: 80 }))])
  t.match(failing, { pass: false }, 'a failed p99 still fails')
  const [silent] = summariseEndpoints([result('admin_list', stats({ requests: 0, ok: 0 }))])
  t.match(silent, { pass: false, failures: ['no responses'] })
})

t.test('the ILIKE, purge and RSS checks', async (t) => {
  const ilike = { unindexed_ms: 5300, indexed_ms: 1.3, speedup: 4076.9 } as IlikeResult
  t.match(ilikeCheck(ilike), { pass: true, value: '4076.9x (5300 ms -> 1.3 ms)' })
  t.match(ilikeCheck({ ...ilike, speedup: 99 }), { pass: false })
  t.match(ilikeCheck(null), { pass: null })

  const purge: PurgeResult = {
    target_timestamp: 1,
    expected_rows: 3_000_000,
    deleted_rows: 3_000_000,
    status: 200,
    seconds: 7.5,
    rows_per_sec: 400_000,
    readers_rate: 1000,
    readers_before: stats({ p99Ms: 10 }),
    readers_during: stats({ p99Ms: 18 }),
    p99_ratio: 1.8
  }
  t.match(purgeChecks(purge), [{ pass: true, value: /400,000 rows\/s/ }, { pass: true }])
  t.match(purgeChecks({ ...purge, rows_per_sec: 250_000, p99_ratio: 2.5 }), [{ pass: false }, { pass: false }])
  t.match(purgeChecks({ ...purge, readers_during: stats({ p99Ms: 18, non2xx: 1 }) }), [{ pass: true }, { pass: false }], 'reader errors fail')
  t.match(purgeChecks({ ...purge, status: 409, error: 'running' }), [{ pass: false, value: 'HTTP 409 running' }, {}])
  t.strictSame(purgeChecks(null), [])

  t.match(rssCheck({ before_mb: 100, after_mb: 150, peak_mb: 160, samples_mb: [120, 140, 130] }), { pass: true, value: '100 MB -> 150 MB, 120-140 MB between runs (peak 160 MB)' })
  t.match(rssCheck({ before_mb: 100, after_mb: 151, peak_mb: 160, samples_mb: [] }), { pass: false, value: '100 MB -> 151 MB (peak 160 MB)' })
  t.match(rssCheck({ before_mb: null, after_mb: null, peak_mb: null, samples_mb: [] }), { pass: null })
})

t.test('command-line options', async (t) => {
  const o = parseOptions(['--duration', '3', '--rows', '1M', '--only', 'naive,self_list,purge', '--out', 'x.json'], { DATABASE_URL: 'postgres://u:secret@h/db' })
  t.not(o, 'help')
  if (o === 'help') return
  t.match(o, { databaseUrl: 'postgres://u:secret@h/db', duration: 3, connections: 50, warmup: 3, rows: 1_000_000, only: ['naive', 'self_list', 'purge'], skipPurge: false, purgeReadersRate: null, vacuum: true })
  t.match(o.out, /x\.json$/)
  t.ok(selected(o, 'purge'))
  t.notOk(selected(o, 'ilike'))
  t.ok(selected({ only: null, skipPurge: true }, 'ilike'))
  t.notOk(selected({ only: null, skipPurge: true }, 'purge'))

  const defaults = parseOptions(['--database-url', 'postgres://h/db'], {})
  if (defaults !== 'help') t.match(defaults, { duration: 10, connections: 50, warmup: 3, rows: null, only: null, out: /bench\/out\/.+\.json$/ })
  t.equal(parseOptions(['--help'], {}), 'help')
  t.match(parseOptions(['--no-vacuum', '--skip-purge', '--purge-readers-rate', '500'], { DATABASE_URL: 'x' }), { vacuum: false, skipPurge: true, purgeReadersRate: 500 })

  t.throws(() => parseOptions([], {}), UsageError, 'a database URL is required')
  t.throws(() => parseOptions(['--only', 'self_lsit'], { DATABASE_URL: 'x' }), /unknown: self_lsit/)
  t.throws(() => parseOptions(['--duration', '0'], { DATABASE_URL: 'x' }), /--duration/)
  t.throws(() => parseOptions(['--connections', '2.5'], { DATABASE_URL: 'x' }), /--connections/)
  t.throws(() => parseOptions(['--bogus'], { DATABASE_URL: 'x' }), UsageError)

  t.equal(parseCount('200k', '--rows'), 200_000)
  t.equal(parseCount('10_000_000', '--rows'), 10_000_000)
  t.equal(parseCount('1.5M', '--rows'), 1_500_000)
  t.throws(() => parseCount('lots', '--rows'), /--rows must be a number/)

  t.equal(redactUrl('postgres://u:secret@h:5432/db'), 'postgres://u:***@h:5432/db')
  t.equal(redactUrl('postgres://h/db'), 'postgres://h/db')
})
