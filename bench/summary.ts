// From measured numbers to verdicts: ratios to the naive baseline, pass/fail against the issue's
// targets, and the printed table. Pure functions, so the arithmetic is unit-tested.
import type { LoadStats } from './load.js'
import type { Target } from './endpoints.js'

export interface EndpointResult {
  name: string
  server: 'service' | 'baselines'
  target: Target
  stats: LoadStats | null
  /** why it did not run */
  skipped?: string
  /** service RSS (MB) right after this endpoint's run */
  rssMbAfter?: number | null
}

export interface EndpointRow {
  name: string
  reqPerSec: number | null
  p50Ms: number | null
  p99Ms: number | null
  /** non-2xx answers + connection errors */
  errors: number | null
  naiveRatio: number | null
  target: string
  /** null: nothing to judge (a baseline without errors, a skipped endpoint, a ratio without naive) */
  pass: boolean | null
  failures: string[]
}

export interface Check {
  name: string
  value: string
  target: string
  pass: boolean | null
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits

export function describeTarget (t: Target): string {
  const parts: string[] = []
  if (t.p99Ms !== undefined) parts.push(`p99<=${t.p99Ms}ms`)
  if (t.minNaiveRatio !== undefined) parts.push(`>=${t.minNaiveRatio}x naive`)
  return parts.length === 0 ? '-' : parts.join(', ')
}

export function summariseEndpoints (results: EndpointResult[]): EndpointRow[] {
  const naive = results.find((r) => r.name === 'naive')?.stats ?? null
  const naiveRps = naive !== null && naive.reqPerSec > 0 ? naive.reqPerSec : null

  return results.map((r): EndpointRow => {
    const target = describeTarget(r.target)
    if (r.stats === null) {
      return { name: r.name, reqPerSec: null, p50Ms: null, p99Ms: null, errors: null, naiveRatio: null, target, pass: null, failures: r.skipped === undefined ? [] : [`skipped: ${r.skipped}`] }
    }
    const s = r.stats
    const errors = s.non2xx + s.errors
    const naiveRatio = naiveRps === null ? null : round(s.reqPerSec / naiveRps)
    const failures: string[] = []
    let undecided = false
    if (s.requests === 0) failures.push('no responses')
    if (errors > 0) failures.push(`${errors} errors`)
    if (r.target.p99Ms !== undefined && s.p99Ms > r.target.p99Ms) failures.push(`p99 ${s.p99Ms} ms > ${r.target.p99Ms} ms`)
    if (r.target.minNaiveRatio !== undefined) {
      if (naiveRatio === null) undecided = true
      else if (naiveRatio < r.target.minNaiveRatio) failures.push(`${naiveRatio}x naive < ${r.target.minNaiveRatio}x`)
    }
    const judged = r.target.p99Ms !== undefined || r.target.minNaiveRatio !== undefined || failures.length > 0
    const pass = failures.length > 0 ? false : (undecided || !judged ? null : true)
    return { name: r.name, reqPerSec: s.reqPerSec, p50Ms: s.p50Ms, p99Ms: s.p99Ms, errors, naiveRatio, target, pass, failures }
  })
}

export interface IlikeResult {
  keyword_length: number
  matches: number
  /** median ms of content ILIKE … ORDER BY created_at desc, id desc LIMIT 100 with bitmap scans off */
  unindexed_ms: number
  /** the same query as the service runs it (trigram index allowed) */
  indexed_ms: number
  unindexed_runs_ms: number[]
  indexed_runs_ms: number[]
  unindexed_plan: string
  indexed_plan: string
  speedup: number
  /** unindexed median over the admin_search_rare endpoint's p50 (HTTP included), when it ran */
  speedup_vs_endpoint_p50: number | null
}

export const ILIKE_MIN_SPEEDUP = 100

export function ilikeCheck (r: IlikeResult | null): Check {
  if (r === null) return { name: 'rare search vs unindexed ILIKE', value: 'not measured', target: `>=${ILIKE_MIN_SPEEDUP}x`, pass: null }
  return {
    name: 'rare search vs unindexed ILIKE',
    value: `${r.speedup}x (${r.unindexed_ms} ms -> ${r.indexed_ms} ms)`,
    target: `>=${ILIKE_MIN_SPEEDUP}x`,
    pass: r.speedup >= ILIKE_MIN_SPEEDUP
  }
}

export interface PurgeResult {
  target_timestamp: number
  expected_rows: number
  deleted_rows: number
  status: number
  seconds: number
  rows_per_sec: number
  readers_rate: number | null
  readers_before: LoadStats
  readers_during: LoadStats
  /** readers' p99 during over before */
  p99_ratio: number | null
  error?: string
}

export const PURGE_MIN_ROWS_PER_SEC = 300_000
export const PURGE_MAX_P99_RATIO = 2

export function purgeChecks (r: PurgeResult | null): Check[] {
  if (r === null) return []
  const readerErrors = r.readers_during.non2xx + r.readers_during.errors + r.readers_before.non2xx + r.readers_before.errors
  return [
    {
      name: 'purge throughput',
      value: r.status === 200 ? `${Math.round(r.rows_per_sec).toLocaleString('en-US')} rows/s (${r.deleted_rows.toLocaleString('en-US')} rows in ${r.seconds} s)` : `HTTP ${r.status} ${r.error ?? ''}`.trim(),
      target: `>=${PURGE_MIN_ROWS_PER_SEC.toLocaleString('en-US')} rows/s`,
      pass: r.status === 200 && r.rows_per_sec >= PURGE_MIN_ROWS_PER_SEC
    },
    {
      name: 'readers p99 during purge',
      value: `${r.readers_during.p99Ms} ms vs ${r.readers_before.p99Ms} ms before (${r.p99_ratio ?? '-'}x), ${readerErrors} errors`,
      target: `<=${PURGE_MAX_P99_RATIO}x before, no errors`,
      pass: r.p99_ratio === null ? null : r.p99_ratio <= PURGE_MAX_P99_RATIO && readerErrors === 0
    }
  ]
}

export interface RssReport {
  /** after start-up, before any load */
  before_mb: number | null
  /** after every run (purge included) */
  after_mb: number | null
  /** VmHWM at the end */
  peak_mb: number | null
  /** after each service endpoint's run, in order */
  samples_mb: number[]
}

/**
 * How much the service's RSS may grow from idle to the end of the run. V8 grows its heap and code
 * space to the working set during the first minutes, then RSS swings with GC; a leak keeps
 * growing with the requests served (hundreds of thousands per run), past any such allowance.
 */
export const RSS_MAX_GROWTH = 0.5

export function rssCheck (r: RssReport): Check {
  const range = r.samples_mb.length === 0 ? '' : `, ${Math.min(...r.samples_mb)}-${Math.max(...r.samples_mb)} MB between runs`
  const value = `${r.before_mb ?? '?'} MB -> ${r.after_mb ?? '?'} MB${range} (peak ${r.peak_mb ?? '?'} MB)`
  const target = `end <= ${1 + RSS_MAX_GROWTH}x start`
  if (r.before_mb === null || r.after_mb === null) return { name: 'service RSS flat', value, target, pass: null }
  return { name: 'service RSS flat', value, target, pass: r.after_mb <= r.before_mb * (1 + RSS_MAX_GROWTH) }
}

const fmt = (n: number | null, digits = 1) => n === null ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const verdict = (pass: boolean | null) => pass === null ? '-' : pass ? 'PASS' : 'FAIL'

function table (header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function formatTable (rows: EndpointRow[], checks: Check[]): string {
  const endpointTable = table(
    ['endpoint', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'x naive', 'target', 'result'],
    rows.map((r) => [
      r.name,
      fmt(r.reqPerSec, 0),
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      r.errors === null ? '-' : String(r.errors),
      r.naiveRatio === null ? '-' : `${r.naiveRatio.toFixed(2)}x`,
      r.target,
      r.failures.some((f) => f.startsWith('skipped')) ? 'skipped' : verdict(r.pass)
    ]),
    new Set([1, 2, 3, 4, 5])
  )
  const failures = rows.filter((r) => r.failures.length > 0).map((r) => `  ${r.name}: ${r.failures.join('; ')}`)
  const checkTable = checks.length === 0 ? '' : '\n\n' + table(['check', 'value', 'target', 'result'], checks.map((c) => [c.name, c.value, c.target, verdict(c.pass)]), new Set())
  return endpointTable + (failures.length > 0 ? '\n\n' + failures.join('\n') : '') + checkTable
}
