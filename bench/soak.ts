// Soak test (issue 10, item 10): the service as production starts it, on a seeded database, for a
// long stretch of mixed work at once: readers on every read route, a steady stream of JSON batches
// written at "now", and purges of the oldest ~10 % a third and two thirds of the way in. Every
// --sample seconds it records what each route group served and failed, each read route's p99, the
// service's RSS and the stat-fold backlog; at the end it checks the table holds exactly the rows
// it should, and prints (and writes into the JSON report) a markdown summary.
//
//   node --import tsx bench/soak.ts --database-url postgres://…/soak [--duration 600] [--connections 20] [--sample 30] [--out FILE]
//
// The database is changed: rows are written and the oldest ~20 % are deleted. Run it on a copy.
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createHistogram } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { METRIC_PREFIX } from '../src/plugins/metrics.js'
import { buildEndpoints, userHeaders, type BenchRequest, type EndpointName, type EndpointSpec } from './endpoints.js'
import { runLoad, type LoadStats } from './load.js'
import { redactUrl, SetupError, UsageError } from './options.js'
import { readRss, SERVICE_ENV, serviceWarnings, startService, type ChildServer } from './processes.js'
import { purgeTarget, sendPurge } from './purge.js'
import { pick, randInt, type Rng } from './random.js'
import { sampleParams, tableStats, type BenchParams } from './sampler.js'
import { settle, type SettleResult } from './settle.js'
import { RSS_MAX_GROWTH, type Check } from './summary.js'

export interface SoakOptions {
  databaseUrl: string
  /** seconds of load in all */
  duration: number
  /** reader connections, shared out over the read routes */
  connections: number
  /** seconds between samples */
  sample: number
  out: string
}

/** Rows per JSON batch and the batches' period: 500 rows/s, a busy gateway's steady write rate. */
const INGEST_BATCH_ROWS = 100
const INGEST_EVERY_MS = 200
/** Batches in flight at once; a tick that finds this many still waiting is counted as missed. */
const INGEST_MAX_IN_FLIGHT = 4
/** Each purge deletes the rows older than this share of the table as it was at the start. */
const PURGE_FRACTION = 0.1
/** When the purges start, as shares of --duration. */
const PURGE_AT = [1 / 3, 2 / 3]
/** How long the backlog may take to reach 0 once the load has stopped. */
const DRAIN_TIMEOUT_S = 60
const BACKLOG_METRIC = `${METRIC_PREFIX}stat_fold_backlog_rows`
const LAG_METRIC = `${METRIC_PREFIX}stat_fold_lag_seconds`

/** The read routes and the endpoints of bench/endpoints.ts that each one mixes; weight: its share of the connections. */
const READ_ROUTES: Array<{ route: string, weight: number, endpoints: EndpointName[] }> = [
  { route: '/api/log/self', weight: 4, endpoints: ['self_list', 'self_list_filtered', 'self_list_deep_page', 'self_list_cursor_deep'] },
  { route: '/api/log/token', weight: 2, endpoints: ['token_logs'] },
  { route: '/api/log/self/stat', weight: 2, endpoints: ['self_stat_1d', 'self_stat_30d'] },
  { route: '/api/log/self/search', weight: 2, endpoints: ['self_search_rare', 'self_search_common'] },
  { route: '/api/log/', weight: 2, endpoints: ['admin_list', 'admin_list_filtered'] },
  { route: '/api/log/stat', weight: 1, endpoints: ['admin_stat_1d', 'admin_stat_30d'] },
  { route: '/api/log/search', weight: 1, endpoints: ['admin_search_rare', 'admin_search_common'] }
]

export const USAGE = `Usage: node --import tsx bench/soak.ts --database-url URL [options]

Starts the service (as production does) on a seeded database and, for --duration seconds, runs at
once: readers on every read route (autocannon), JSON batches of ${INGEST_BATCH_ROWS} rows every ${INGEST_EVERY_MS} ms, and a purge of
the oldest ~${PURGE_FRACTION * 100} % of the table a third and again two thirds of the way in. Samples every --sample
seconds; prints a markdown summary and writes a JSON report. The database is CHANGED (rows written,
~${PURGE_FRACTION * PURGE_AT.length * 100} % deleted): use a copy (npm run seed -- --rows N --database-url …). Exit code 1 when a check fails.

  --database-url URL   PostgreSQL URL of a seeded database (required; default: $DATABASE_URL)
  --duration S         seconds of load (default 600)
  --connections N      reader connections, shared out over the ${READ_ROUTES.length} read routes (default 20, at least ${READ_ROUTES.length})
  --sample S           seconds between samples (default 30)
  --out FILE           JSON report (default bench/results/<date>-soak.json)
  --help`

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits
const log = (line: string) => { process.stderr.write(`[soak] ${line}\n`) }

function positive (raw: string | undefined, name: string, fallback: number, integer = false): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${name} must be a ${integer ? 'whole ' : ''}number > 0, got '${raw}'`)
  }
  return n
}

/** argv (without node and the script) → options; throws UsageError with a message for the user. */
export function parseSoakOptions (argv: string[], env: NodeJS.ProcessEnv = process.env, now = new Date()): SoakOptions | 'help' {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'database-url': { type: 'string' },
        duration: { type: 'string' },
        connections: { type: 'string' },
        sample: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }))
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err))
  }
  if (values.help === true) return 'help'
  const databaseUrl = values['database-url'] ?? env.DATABASE_URL
  if (databaseUrl === undefined || databaseUrl === '') throw new UsageError('--database-url is required (a seeded database: npm run seed -- --rows N --database-url …)')
  const duration = positive(values.duration, '--duration', 600)
  // Shorter intervals hold too few requests of the slow routes for a p99 to mean anything.
  const sample = positive(values.sample, '--sample', 30)
  if (sample < 1) throw new UsageError(`--sample must be at least 1 second, got '${values.sample}'`)
  if (duration < sample) throw new UsageError(`--duration (${duration}) must be at least one --sample interval (${sample})`)
  const connections = positive(values.connections, '--connections', 20, true)
  if (connections < READ_ROUTES.length) throw new UsageError(`--connections must be at least ${READ_ROUTES.length}, one per read route, got ${connections}`)
  return {
    databaseUrl,
    duration,
    connections,
    sample,
    out: path.resolve(values.out ?? path.join(import.meta.dirname, 'results', `${now.toISOString().slice(0, 10)}-soak.json`))
  }
}

// ---------------------------------------------------------------------------------------------
// Readers

interface ReadRoute {
  route: string
  connections: number
  endpoints: EndpointName[]
  next: () => BenchRequest
}

/** Connections in proportion to the weights, at least one each (largest remainder). */
export function shareConnections (total: number, weights: number[]): number[] {
  const spare = total - weights.length
  const sum = weights.reduce((s, w) => s + w, 0)
  const exact = weights.map((w) => spare * w / sum)
  const shares = exact.map((x) => 1 + Math.floor(x))
  let left = total - shares.reduce((s, n) => s + n, 0)
  const byRemainder = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0])
  for (const [, i] of byRemainder) {
    if (left-- <= 0) break
    shares[i]!++
  }
  return shares
}

/** Each read route with the endpoints this database can serve, mixed uniformly. */
function readRoutes (specs: EndpointSpec[], connections: number, rng: Rng): ReadRoute[] {
  const live = READ_ROUTES
    .map((r) => ({ ...r, specs: specs.filter((s) => r.endpoints.includes(s.name) && s.skip === undefined) }))
    .filter((r) => r.specs.length > 0)
  const shares = shareConnections(connections, live.map((r) => r.weight))
  return live.map((r, i) => ({
    route: r.route,
    connections: shares[i]!,
    endpoints: r.specs.map((s) => s.name),
    next: () => pick(rng, r.specs).next()
  }))
}

// ---------------------------------------------------------------------------------------------
// Ingestion: JSON batches on a fixed schedule, not back to back, as a gateway writes

interface Writer { user_id: number, username: string, token_id: number, token_name: string }

/** Users with their keys (and a few without), so the rows written show up in their own reads. */
async function writers (client: pg.ClientBase): Promise<Writer[]> {
  const { rows } = await client.query(`
    select u.id as user_id, u.username, coalesce(t.id, 0) as token_id, coalesce(t.name, '') as token_name
    from users u left join tokens t on t.user_id = u.id and t.deleted_at is null
    where u.status = 1 and u.role < 10
    order by random() limit 500`)
  return rows as Writer[]
}

function ingestBody (rng: Rng, who: Writer[], p: BenchParams): string {
  const rows = Array.from({ length: INGEST_BATCH_ROWS }, () => {
    const w = pick(rng, who)
    const prompt = randInt(rng, 10, 4000)
    const completion = randInt(rng, 0, 2000)
    // No created_at: the service stamps the row when it receives it, as for a live gateway.
    return {
      ...w,
      type: rng() < 0.9 ? 2 : randInt(rng, 1, 5),
      model_name: p.models.length > 0 ? pick(rng, p.models) : 'gpt-4o-mini',
      group: p.groups.length > 0 ? pick(rng, p.groups) : 'default',
      channel_id: p.channels.length > 0 ? pick(rng, p.channels) : 1,
      quota: prompt + 2 * completion,
      prompt_tokens: prompt,
      completion_tokens: completion,
      use_time: randInt(rng, 0, 30),
      is_stream: rng() < 0.5,
      content: `model ratio 2.50, completion ratio 4.00, soak req_${randomBytes(8).toString('hex')}`
    }
  })
  return JSON.stringify(rows)
}

export interface GroupInterval {
  /** answers received */
  requests: number
  /** answers by HTTP status; `error` for a request that got none */
  status: Record<string, number>
  /** answers >= 400 other than 429, and requests without an answer */
  errors: number
  /** 429 answers (load shedding by design, not a failure) */
  throttled: number
  p99_ms: number | null
}

interface IngestInterval extends GroupInterval {
  rows: number
  /** ticks skipped because INGEST_MAX_IN_FLIGHT batches were still waiting */
  missed: number
}

function countStatus (status: Record<string, number>, key: string | number) {
  status[String(key)] = (status[String(key)] ?? 0) + 1
}

function errorsOf (status: Record<string, number>): { errors: number, throttled: number } {
  let errors = 0
  for (const [code, n] of Object.entries(status)) {
    if (code === '429') continue
    if (code === 'error' || Number(code) >= 400) errors += n
  }
  return { errors, throttled: status['429'] ?? 0 }
}

function startIngestion (url: string, key: string, body: () => string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: INGEST_MAX_IN_FLIGHT })
  let bucket = { status: {} as Record<string, number>, rows: 0, missed: 0, latencyUs: createHistogram() }
  let inFlight = 0
  const pending = new Set<Promise<void>>()

  const send = async () => {
    const t0 = performance.now()
    let status: number | 'error' = 'error'
    let rows = 0
    try {
      const res = await new Promise<{ status: number, body: string }>((resolve, reject) => {
        const req = http.request(`${url}/api/log/`, { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, (r) => {
          let text = ''
          r.setEncoding('utf8')
          r.on('data', (d: string) => { text += d })
          r.on('end', () => { resolve({ status: r.statusCode ?? 0, body: text }) })
          r.on('error', reject)
        })
        req.on('error', reject)
        req.end(body())
      })
      status = res.status
      if (res.status === 200) rows = (JSON.parse(res.body) as { data: number }).data
    } catch {
      // counted as `error`: no answer
    }
    // Counted in the interval the answer arrived in, like autocannon's.
    const now = bucket
    countStatus(now.status, status)
    now.rows += rows
    if (status !== 'error') now.latencyUs.record(Math.max(1, Math.round((performance.now() - t0) * 1000)))
  }

  const timer = setInterval(() => {
    if (inFlight >= INGEST_MAX_IN_FLIGHT) {
      bucket.missed++
      return
    }
    inFlight++
    const p = send().finally(() => { inFlight--; pending.delete(p) })
    pending.add(p)
  }, INGEST_EVERY_MS)

  return {
    /** What was answered since the last take. */
    take (): IngestInterval {
      const b = bucket
      bucket = { status: {}, rows: 0, missed: 0, latencyUs: createHistogram() }
      const requests = Object.entries(b.status).filter(([k]) => k !== 'error').reduce((s, [, n]) => s + n, 0)
      return { requests, status: b.status, ...errorsOf(b.status), p99_ms: b.latencyUs.count === 0 ? null : round(b.latencyUs.percentile(99) / 1000, 2), rows: b.rows, missed: b.missed }
    },
    /** No new batches; resolves when those in flight have been answered. */
    async stop () {
      clearInterval(timer)
      await Promise.all([...pending])
      agent.destroy()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Purges

export interface PurgeRun {
  /** seconds into the run when the DELETE was sent */
  at_s: number
  target_timestamp: number
  /** rows older than the target just before the DELETE */
  expected_rows: number
  deleted_rows: number
  status: number
  seconds: number
  rows_per_sec: number
  error?: string
}

async function purgeOnce (client: pg.ClientBase, url: string, admin: Record<string, string>, startRows: number, startedAt: number): Promise<PurgeRun> {
  // The oldest ~10 % of the table as it was at the start: the previous purges' rows are gone, so
  // each purge reaches another 10 % further into the history. Rows written since are "now".
  const { target, expected } = await purgeTarget(client, startRows, PURGE_FRACTION)
  const at = (Date.now() - startedAt) / 1000
  const t0 = performance.now()
  const { status, deleted, error } = await sendPurge(url, target, admin)
  const seconds = (performance.now() - t0) / 1000
  return {
    at_s: round(at),
    target_timestamp: target,
    expected_rows: expected,
    deleted_rows: deleted,
    status,
    seconds: round(seconds, 3),
    rows_per_sec: seconds > 0 ? Math.round(deleted / seconds) : 0,
    ...(error === undefined ? {} : { error })
  }
}

/** The purges at their times, one after the other (a second concurrent purge would get 409). */
function startPurges (client: pg.ClientBase, url: string, admin: Record<string, string>, startRows: number, startedAt: number, durationS: number, stopped: AbortSignal) {
  const finished: PurgeRun[] = []
  let taken = 0
  let running = false
  const done = (async () => {
    for (const share of PURGE_AT) {
      const wait = startedAt + share * durationS * 1000 - Date.now()
      if (wait > 0) await sleep(wait, undefined, { signal: stopped }).catch(() => {})
      if (stopped.aborted) return
      running = true
      const run = await purgeOnce(client, url, admin, startRows, startedAt)
      running = false
      finished.push(run)
      log(`purge: HTTP ${run.status}, ${run.deleted_rows.toLocaleString('en-US')} of ${run.expected_rows.toLocaleString('en-US')} expected rows in ${run.seconds} s${run.error === undefined ? '' : ` (${run.error})`}`)
    }
  })()
  return {
    all: finished,
    done,
    running: () => running,
    /** The purges that ended since the last take. */
    take (): GroupInterval {
      const runs = finished.slice(taken)
      taken = finished.length
      const status: Record<string, number> = {}
      for (const r of runs) countStatus(status, r.status === 0 ? 'error' : r.status)
      return { requests: runs.filter((r) => r.status !== 0).length, status, ...errorsOf(status), p99_ms: null }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Samples

interface Backlog { rows: number | null, lag_s: number | null }

/** The fold backlog as the service exports it (null: not read, or the gauge said -1). */
async function readBacklog (url: string): Promise<Backlog> {
  const token = process.env.METRICS_TOKEN
  try {
    const res = await fetch(`${url}/metrics`, { headers: token === undefined || token === '' ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) })
    const text = await res.text()
    const gauge = (name: string) => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
      const v = m === null ? NaN : Number(m[1])
      return Number.isFinite(v) && v >= 0 ? round(v, 1) : null
    }
    return { rows: gauge(BACKLOG_METRIC), lag_s: gauge(LAG_METRIC) }
  } catch {
    return { rows: null, lag_s: null }
  }
}

function readInterval (s: LoadStats): GroupInterval {
  const status: Record<string, number> = { ...s.statusCodes }
  if (s.errors > 0) status.error = s.errors
  return { requests: s.requests, status, ...errorsOf(status), p99_ms: s.requests === 0 ? null : s.p99Ms }
}

function sumGroups (groups: GroupInterval[]): GroupInterval {
  const status: Record<string, number> = {}
  for (const g of groups) for (const [k, n] of Object.entries(g.status)) status[k] = (status[k] ?? 0) + n
  return { requests: groups.reduce((s, g) => s + g.requests, 0), status, ...errorsOf(status), p99_ms: null }
}

export interface Interval {
  /** seconds into the run at the end of the interval */
  t_s: number
  seconds: number
  reads: GroupInterval
  /** by read route */
  routes: Record<string, GroupInterval & { req_per_s: number }>
  ingestion: IngestInterval
  purge: GroupInterval & { running: boolean }
  rss_mb: number | null
  backlog_rows: number | null
  fold_lag_s: number | null
}

// ---------------------------------------------------------------------------------------------
// Summary

const n = (v: number | null | undefined) => v === null || v === undefined ? '-' : v.toLocaleString('en-US')
const verdict = (pass: boolean | null) => pass === null ? '-' : pass ? 'PASS' : 'FAIL'

function markdownTable (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(3, h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n')
}

interface Outcome {
  intervals: Interval[]
  purges: PurgeRun[]
  rss: { idle_mb: number | null, first_sample_mb: number | null, end_mb: number | null, peak_mb: number | null }
  drain: { backlog_after_load: number | null, drained_after_s: number | null }
  table: { start_rows: number, end_rows: number, expected_end_rows: number, below_last_target: number | null }
}

function totalsOf (o: Outcome) {
  const groups = o.intervals.flatMap((i) => [i.reads, i.ingestion, i.purge])
  const all = sumGroups(groups)
  return {
    requests: all.requests,
    errors: all.errors,
    throttled: all.throttled,
    status: all.status,
    reads: sumGroups(o.intervals.map((i) => i.reads)),
    ingestion: sumGroups(o.intervals.map((i) => i.ingestion)),
    rows_ingested: o.intervals.reduce((s, i) => s + i.ingestion.rows, 0),
    ingest_ticks_missed: o.intervals.reduce((s, i) => s + i.ingestion.missed, 0),
    rows_purged: o.purges.reduce((s, p) => s + p.deleted_rows, 0)
  }
}

export function soakChecks (o: Outcome): Check[] {
  const t = totalsOf(o)
  const backlogs = o.intervals.map((i) => i.backlog_rows)
  const last = o.intervals.at(-1)
  const purgesExact = o.purges.every((p) => p.status === 200 && p.deleted_rows === p.expected_rows)
  const { rss, table, drain } = o
  return [
    {
      name: 'errors (non-429)',
      value: `${n(t.errors)} of ${n(t.requests)} requests (${n(t.throttled)} 429s)`,
      target: '0',
      pass: t.requests > 0 && t.errors === 0
    },
    {
      name: 'service RSS flat',
      value: `${n(rss.idle_mb)} MB idle, ${n(rss.first_sample_mb)} MB after the first interval -> ${n(rss.end_mb)} MB at the end (peak ${n(rss.peak_mb)} MB)`,
      target: `end <= ${1 + RSS_MAX_GROWTH}x first interval`,
      pass: rss.first_sample_mb === null || rss.end_mb === null ? null : rss.end_mb <= rss.first_sample_mb * (1 + RSS_MAX_GROWTH)
    },
    {
      name: 'stat-fold backlog drains',
      value: `${backlogs.map((b) => b ?? '?').join(' -> ')} rows; ${n(last?.backlog_rows)} in the last interval, ${drain.drained_after_s === null ? `${n(drain.backlog_after_load)} when the load stopped, not 0 ${DRAIN_TIMEOUT_S} s later` : `${n(drain.backlog_after_load)} when the load stopped, 0 after ${drain.drained_after_s} s`}`,
      target: `0 within ${DRAIN_TIMEOUT_S} s of the load's end`,
      pass: drain.drained_after_s !== null
    },
    {
      name: 'ingestion kept its pace',
      value: `${n(t.rows_ingested)} rows in ${n(t.ingestion.requests)} batches, ${n(t.ingest_ticks_missed)} ticks missed`,
      target: `a batch every ${INGEST_EVERY_MS} ms, none missed`,
      pass: t.ingest_ticks_missed === 0 && t.rows_ingested > 0
    },
    {
      name: 'purges deleted what they should',
      value: o.purges.length === 0 ? 'none ran' : o.purges.map((p) => `${n(p.deleted_rows)}/${n(p.expected_rows)} (HTTP ${p.status}, ${n(p.rows_per_sec)} rows/s)`).join('; '),
      target: 'every row older than the target',
      pass: o.purges.length > 0 && purgesExact
    },
    {
      name: 'rows in logs at the end',
      value: `${n(table.end_rows)} = ${n(table.start_rows)} + ${n(t.rows_ingested)} ingested - ${n(t.rows_purged)} purged? ${table.end_rows === table.expected_end_rows ? 'yes' : `no, expected ${n(table.expected_end_rows)}`}; ${n(table.below_last_target)} below the last purge target`,
      target: 'exact, none below the target',
      pass: table.end_rows === table.expected_end_rows && (table.below_last_target ?? 0) === 0
    }
  ]
}

export function formatSummary (o: Outcome, checks: Check[], header: string): string {
  const t = totalsOf(o)
  const first = o.intervals[0]
  const last = o.intervals.at(-1)
  const routeNames = Object.keys(first?.routes ?? {})
  const totals = markdownTable(['', 'requests', 'errors (non-429)', '429'], [
    ['reads', n(t.reads.requests), n(t.reads.errors), n(t.reads.throttled)],
    ['ingestion', n(t.ingestion.requests), n(t.ingestion.errors), n(t.ingestion.throttled)],
    ['purge', n(o.purges.filter((p) => p.status !== 0).length), n(o.purges.filter((p) => p.status !== 200).length), '0'],
    ['total', n(t.requests), n(t.errors), n(t.throttled)]
  ])
  const p99 = markdownTable(['read route', 'requests', 'errors', 'p99 first interval (ms)', 'p99 last interval (ms)', 'last/first'], routeNames.map((r) => {
    const a = first?.routes[r]?.p99_ms ?? null
    const b = last?.routes[r]?.p99_ms ?? null
    const all = sumGroups(o.intervals.map((i) => i.routes[r]!))
    return [r, n(all.requests), n(all.errors), n(a), n(b), a !== null && b !== null && a > 0 ? `${(b / a).toFixed(2)}x` : '-']
  }))
  const ingestP99 = markdownTable(['', 'p99 first interval (ms)', 'p99 last interval (ms)'], [['ingestion (POST /api/log/)', n(first?.ingestion.p99_ms), n(last?.ingestion.p99_ms)]])
  const timeline = markdownTable(
    ['t (s)', 'reads', 'read err', 'batches', 'rows in', 'ingest err', 'purge', 'RSS MB', 'backlog rows', 'fold lag s', ...routeNames.map((r) => `p99 ${r}`)],
    o.intervals.map((i) => [
      n(i.t_s), n(i.reads.requests), n(i.reads.errors), n(i.ingestion.requests), n(i.ingestion.rows), n(i.ingestion.errors),
      i.purge.requests > 0 ? `done (${Object.entries(i.purge.status).map(([k, v]) => `${v}x ${k}`).join(', ')})` : i.purge.running ? 'running' : '',
      n(i.rss_mb), n(i.backlog_rows), n(i.fold_lag_s),
      ...routeNames.map((r) => n(i.routes[r]?.p99_ms))
    ])
  )
  const checkTable = markdownTable(['check', 'value', 'target', 'result'], checks.map((c) => [c.name, c.value, c.target, verdict(c.pass)]))
  return [header, checkTable, totals, p99, ingestP99, '### Every interval', timeline].join('\n\n')
}

// ---------------------------------------------------------------------------------------------
// The run

async function waitForDrain (url: string): Promise<Outcome['drain']> {
  const t0 = Date.now()
  let b = await readBacklog(url)
  const afterLoad = b.rows
  while (b.rows !== 0 && Date.now() - t0 < DRAIN_TIMEOUT_S * 1000) {
    await sleep(1000)
    b = await readBacklog(url)
  }
  return { backlog_after_load: afterLoad, drained_after_s: b.rows === 0 ? round((Date.now() - t0) / 1000) : null }
}

export async function runSoak (o: SoakOptions): Promise<{ report: Record<string, unknown>, summary: string, pass: boolean }> {
  const started = Date.now()
  const loadBefore = os.loadavg()[0] ?? 0
  const client = new pg.Client({ connectionString: o.databaseUrl, application_name: 'log-soak' })
  await client.connect()
  let service: ChildServer | null = null
  try {
    await client.query("set statement_timeout = '10min'")
    const { rows: reg } = await client.query("select to_regclass('logs') as t")
    if ((reg[0] as { t: string | null }).t === null) throw new SetupError('there is no logs table in this database: seed it first (npm run seed -- --rows N --database-url …)')
    const stats = await tableStats(client)
    if (stats.rows === 0) throw new SetupError('the logs table is empty: seed it first (npm run seed -- --rows N --database-url …)')
    log(`logs: ${stats.rows.toLocaleString('en-US')} rows; sampling parameters…`)
    const params = await sampleParams(client)
    if (params.admin.created) log(`no enabled admin with an access token: created user bench_admin (id ${params.admin.id})`)
    const who = await writers(client)
    if (who.length === 0) throw new SetupError('no enabled user to write rows for: seed the database first')
    const routes = readRoutes(buildEndpoints(params), o.connections, Math.random)
    const ingestKey = randomBytes(24).toString('hex')

    log('starting the service…')
    // Retention off: only this run's purges may delete rows, or the final count cannot be checked.
    service = await startService(o.databaseUrl, { INGEST_KEY: ingestKey, LOG_RETENTION_DAYS: '' })
    const settled: SettleResult = await settle(client, { vacuum: true, log: (line) => log(line.replace(/^\[bench\] /, '')) })
    log(`settled: ${settled.pending_deltas ?? 0} stat deltas folded in ${settled.waited_s} s; VACUUM (ANALYZE) ${settled.vacuum_s} s`)
    // The settle may have folded, not written: the row count is taken again right before the load.
    const startRows = (await tableStats(client)).rows
    const idle = readRss(service.pid)

    log(`${o.duration} s of load: ${routes.map((r) => `${r.route} x${r.connections}`).join(', ')}; ${INGEST_BATCH_ROWS} rows every ${INGEST_EVERY_MS} ms; purges at ${PURGE_AT.map((s) => round(s * o.duration)).join(' s, ')} s`)
    const t0 = Date.now()
    const end = t0 + o.duration * 1000
    const stopPurges = new AbortController()
    const ingestion = startIngestion(service.url, ingestKey, () => ingestBody(Math.random, who, params))
    const purges = startPurges(client, service.url, userHeaders(params.admin), startRows, t0, o.duration, stopPurges.signal)
    const intervals: Interval[] = []
    try {
      for (;;) {
        const left = (end - Date.now()) / 1000
        // A remainder under a second is not worth an interval of its own.
        if (left < 1) break
        const seconds = Math.min(o.sample, left)
        const reads = await Promise.all(routes.map((r) => runLoad({ url: service!.url, connections: r.connections, duration: seconds, next: r.next })))
        const backlog = await readBacklog(service.url)
        const routeStats = Object.fromEntries(routes.map((r, i) => {
          const s = reads[i]!
          return [r.route, { ...readInterval(s), req_per_s: s.reqPerSec }]
        }))
        const interval: Interval = {
          t_s: round((Date.now() - t0) / 1000),
          seconds: round(seconds),
          reads: sumGroups(Object.values(routeStats)),
          routes: routeStats,
          ingestion: ingestion.take(),
          purge: { ...purges.take(), running: purges.running() },
          rss_mb: readRss(service.pid)?.rssMb ?? null,
          backlog_rows: backlog.rows,
          fold_lag_s: backlog.lag_s
        }
        intervals.push(interval)
        const worst = Math.max(0, ...Object.values(routeStats).map((r) => r.p99_ms ?? 0))
        log(`t=${interval.t_s}s reads ${interval.reads.requests} (${interval.reads.errors} err, worst p99 ${worst} ms); ingest ${interval.ingestion.rows} rows (${interval.ingestion.errors} err); ` +
          `purge ${interval.purge.running ? 'running' : interval.purge.requests > 0 ? 'done' : '-'}; RSS ${interval.rss_mb} MB; backlog ${interval.backlog_rows ?? '?'} rows`)
      }
    } finally {
      stopPurges.abort()
      await ingestion.stop()
      // A purge still under way is let finish: its rows must be counted before the table is checked.
      if (purges.running()) log('waiting for the purge under way…')
      await purges.done
    }
    // What ended after the last interval (the batches in flight, a late purge) still counts.
    const tail = intervals.at(-1)
    if (tail !== undefined) {
      const lateIngest = ingestion.take()
      const latePurge = purges.take()
      tail.ingestion = { ...sumGroups([tail.ingestion, lateIngest]), p99_ms: tail.ingestion.p99_ms, rows: tail.ingestion.rows + lateIngest.rows, missed: tail.ingestion.missed + lateIngest.missed }
      tail.purge = { ...sumGroups([tail.purge, latePurge]), running: false }
    }

    log('load stopped; waiting for the stat fold to drain…')
    const drain = await waitForDrain(service.url)
    const endRss = readRss(service.pid)
    const warnings = serviceWarnings(service.output())
    await service.stop()
    service = null

    const endRows = (await tableStats(client)).rows
    const lastTarget = purges.all.filter((p) => p.status === 200).at(-1)?.target_timestamp ?? null
    const below = lastTarget === null
      ? null
      : Number(((await client.query('select count(*) as n from logs where created_at < $1', [lastTarget])).rows[0] as { n: string }).n)
    const ingested = intervals.reduce((s, i) => s + i.ingestion.rows, 0)
    const purged = purges.all.reduce((s, p) => s + p.deleted_rows, 0)

    const outcome: Outcome = {
      intervals,
      purges: purges.all,
      rss: { idle_mb: idle?.rssMb ?? null, first_sample_mb: intervals[0]?.rss_mb ?? null, end_mb: endRss?.rssMb ?? null, peak_mb: endRss?.peakMb ?? null },
      drain,
      table: { start_rows: startRows, end_rows: endRows, expected_end_rows: startRows + ingested - purged, below_last_target: below }
    }
    const checks = soakChecks(outcome)
    const pass = !checks.some((c) => c.pass === false)
    const cpus = os.cpus()
    const header = `## Soak: ${startRows.toLocaleString('en-US')} rows, ${o.duration} s, ${o.connections} reader connections, samples every ${o.sample} s; ` +
      `${cpus.length} x ${cpus[0]?.model ?? 'unknown'}, node ${process.version}; load average ${round(loadBefore, 2)} at the start, ${round(os.loadavg()[0] ?? 0, 2)} at the end`
    const summary = formatSummary(outcome, checks, header)
    const report = {
      date: new Date(started).toISOString(),
      wall_seconds: round((Date.now() - started) / 1000),
      options: { ...o, databaseUrl: redactUrl(o.databaseUrl) },
      machine: { cpus: cpus.length, cpu_model: cpus[0]?.model ?? 'unknown', node: process.version, loadavg_start: round(loadBefore, 2), loadavg_end: round(os.loadavg()[0] ?? 0, 2) },
      database: { rows_at_start: startRows, min_created_at: stats.minCreatedAt, max_created_at: stats.maxCreatedAt },
      service: { env: { ...SERVICE_ENV, INGEST_KEY: '***', LOG_RETENTION_DAYS: '(unset)' }, warnings: warnings.length, warning_samples: warnings.slice(0, 20) },
      settle: settled,
      load: {
        routes: routes.map((r) => ({ route: r.route, connections: r.connections, endpoints: r.endpoints })),
        ingestion: { batch_rows: INGEST_BATCH_ROWS, every_ms: INGEST_EVERY_MS, max_in_flight: INGEST_MAX_IN_FLIGHT, auth: 'INGEST_KEY' },
        purges: { fraction_each: PURGE_FRACTION, at: PURGE_AT.map((s) => round(s * o.duration)) }
      },
      totals: totalsOf(outcome),
      intervals,
      purges: purges.all,
      rss: outcome.rss,
      drain,
      table: outcome.table,
      checks,
      pass,
      summary_markdown: summary
    }
    mkdirSync(path.dirname(o.out), { recursive: true })
    writeFileSync(o.out, JSON.stringify(report, null, 2) + '\n')
    const warningText = warnings.length === 0 ? '' : `\n\nThe service logged ${warnings.length} warnings/errors, e.g.:\n` + [...new Set(warnings.map((w) => `  ${w.msg}${w.err === undefined ? '' : `: ${w.err}`}${w.url === undefined ? '' : ` (${w.url})`}`))].slice(0, 5).join('\n')
    return { report, summary: `${summary}${warningText}\n\nJSON: ${o.out}`, pass }
  } finally {
    if (service !== null) await service.stop()
    await client.end()
  }
}

async function main () {
  try {
    const options = parseSoakOptions(process.argv.slice(2))
    if (options === 'help') {
      process.stdout.write(USAGE + '\n')
      return
    }
    const { summary, pass } = await runSoak(options)
    process.stdout.write('\n' + summary + '\n')
    if (!pass) process.exitCode = 1
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`soak: ${err.message}\n\n${USAGE}\n`)
      process.exitCode = 2
    } else if (err instanceof SetupError) {
      process.stderr.write(`soak: ${err.message}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`soak failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
      process.exitCode = 1
    }
  }
}

// Run as a script, not when a test imports the pure parts.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename) await main()
