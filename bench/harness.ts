// One benchmark run: sample parameters, start the service and the baselines as child processes,
// drive every selected endpoint (warm-up, then the measured run), compare the rare-keyword search
// with an unindexed ILIKE, time a purge under readers, and report.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { buildEndpoints, userHeaders, type EndpointSpec } from './endpoints.js'
import { measureIlike } from './ilike.js'
import { runLoad, type LoadStats } from './load.js'
import { redactUrl, selected, SetupError, type BenchOptions } from './options.js'
import { readRss, REPO_ROOT, SERVICE_ENV, serviceWarnings, startBaselines, startService, type ChildServer } from './processes.js'
import { runPurgePhase } from './purge.js'
import { settle, type SettleResult } from './settle.js'
import { DEEP_CURSOR_ROWS, describeParams, sampleParams, tableStats, type BenchParams } from './sampler.js'
import { NAIVE_SQL } from './baselines.js'
import {
  formatTable, ilikeCheck, purgeChecks, rssCheck, summariseEndpoints,
  type Check, type EndpointResult, type EndpointRow, type IlikeResult, type PurgeResult, type RssReport
} from './summary.js'

/** The scale the issue's targets are set for. */
export const TARGET_ROWS = 10_000_000

export type Logger = (line: string) => void

const round2 = (n: number) => Math.round(n * 100) / 100

/** The purge's readers' req/s when self_list was not measured in the run and none was given. */
const DEFAULT_READERS_RATE = 100

const defaultLog: Logger = (line) => { process.stderr.write(line + '\n') }

function packageVersion (name: string): string | null {
  try {
    return (JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return null
  }
}

async function machineInfo (client: pg.ClientBase) {
  const cpus = os.cpus()
  const settings: Record<string, string> = {}
  for (const name of ['shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'jit', 'synchronous_commit', 'random_page_cost', 'autovacuum']) {
    const { rows } = await client.query(`select current_setting('${name}') as v`)
    settings[name] = String((rows[0] as { v: string }).v)
  }
  const { rows } = await client.query('select version() as v')
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    total_mem_gb: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: `${os.platform()} ${os.release()}`,
    node: process.version,
    postgres: String((rows[0] as { v: string }).v),
    postgres_settings: settings,
    fastify: packageVersion('fastify'),
    autocannon: packageVersion('autocannon'),
    pg: packageVersion('pg')
  }
}

function statsJson (r: EndpointResult, naiveRatio: number | null, pass: boolean | null, failures: string[], target: string) {
  const s: LoadStats | null = r.stats
  return {
    server: r.server,
    ...(s === null
      ? { skipped: r.skipped ?? 'not selected' }
      : {
          req_per_s: s.reqPerSec,
          p50_ms: s.p50Ms,
          p90_ms: s.p90Ms,
          p99_ms: s.p99Ms,
          max_ms: s.maxMs,
          mean_ms: s.meanMs,
          requests: s.requests,
          ok: s.ok,
          non2xx: s.non2xx,
          errors: s.errors,
          timeouts: s.timeouts,
          status_codes: s.statusCodes,
          duration_s: s.durationS
        }),
    naive_ratio: naiveRatio,
    target,
    pass,
    failures,
    rss_mb_after: r.rssMbAfter ?? null
  }
}

export interface BenchOutcome {
  report: Record<string, unknown>
  table: string
  results: EndpointResult[]
  /** false when any judged target failed */
  pass: boolean
}

type DatabaseFacts = Awaited<ReturnType<typeof inspectDatabase>>

/** Refuses a database the run cannot use, then records the table and the machine it runs on. */
async function inspectDatabase (client: pg.ClientBase, o: BenchOptions, log: Logger) {
  await client.query("set statement_timeout = '10min'")
  const { rows: reg } = await client.query("select to_regclass('logs') as t")
  if ((reg[0] as { t: string | null }).t === null) throw new SetupError('there is no logs table in this database: run migrations and the seed first (npm run seed -- --rows N)')

  const stats = await tableStats(client)
  if (o.rows !== null && stats.rows < o.rows) {
    throw new SetupError(`the logs table has ${stats.rows.toLocaleString('en-US')} rows, fewer than --rows ${o.rows.toLocaleString('en-US')}: run \`npm run seed -- --rows ${o.rows}\` first`)
  }
  log(`[bench] logs: ${stats.rows.toLocaleString('en-US')} rows; sampling parameters…`)
  const machine = await machineInfo(client)
  const { rows: sizeRows } = await client.query("select sum(pg_total_relation_size(relid)) as b from (select 'logs'::regclass as relid union select relid from pg_partition_tree('logs')) t")
  const logsSizeMb = Math.round(Number((sizeRows[0] as { b: string }).b) / 2 ** 20)
  return { stats, machine, logsSizeMb }
}

interface Servers {
  service: ChildServer | null
  baselines: ChildServer | null
}

/** Starts only the children the selected work needs; each one started is pushed to `children`. */
async function startServers (o: BenchOptions, endpoints: EndpointSpec[], runPurge: boolean, children: ChildServer[], log: Logger): Promise<Servers> {
  const needService = runPurge || endpoints.some((e) => e.server === 'service' && e.skip === undefined)
  const needBaselines = endpoints.some((e) => e.server === 'baselines' && e.skip === undefined)
  log(`[bench] starting ${[needService ? 'the service' : '', needBaselines ? 'the baselines' : ''].filter(Boolean).join(' and ') || 'nothing'}…`)
  const launched = await Promise.allSettled([
    needService ? startService(o.databaseUrl) : Promise.resolve(null),
    needBaselines ? startBaselines(o.databaseUrl) : Promise.resolve(null)
  ])
  // Whatever started is stopped by the caller, even when its sibling failed to start.
  for (const s of launched) if (s.status === 'fulfilled' && s.value !== null) children.push(s.value)
  for (const s of launched) if (s.status === 'rejected') throw s.reason
  return {
    service: launched[0].status === 'fulfilled' ? launched[0].value : null,
    baselines: launched[1].status === 'fulfilled' ? launched[1].value : null
  }
}

/** Each endpoint in turn (warm-up, then the measured run), sampling the service's memory after each. */
async function measureEndpoints (o: BenchOptions, endpoints: EndpointSpec[], servers: Servers, rss: RssReport, log: Logger): Promise<EndpointResult[]> {
  const { service, baselines } = servers
  const results: EndpointResult[] = []
  for (const e of endpoints) {
    const server = e.server === 'service' ? service : baselines
    if (e.skip !== undefined || server === null) {
      log(`[bench] ${e.name}: skipped (${e.skip ?? 'no server'})`)
      results.push({ name: e.name, server: e.server, target: e.target, stats: null, skipped: e.skip ?? 'no server' })
      continue
    }
    const load = { url: server.url, connections: o.connections, next: e.next }
    if (o.warmup > 0) await runLoad({ ...load, duration: o.warmup })
    const s = await runLoad({ ...load, duration: o.duration })
    const rssAfter = service === null ? null : readRss(service.pid)?.rssMb ?? null
    if (e.server === 'service' && rssAfter !== null) rss.samples_mb.push(rssAfter)
    results.push({ name: e.name, server: e.server, target: e.target, stats: s, rssMbAfter: rssAfter })
    log(`[bench] ${e.name.padEnd(22)} ${s.reqPerSec.toFixed(0).padStart(7)} req/s  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms  non-2xx ${s.non2xx}  errors ${s.errors}`)
  }
  return results
}

/** The rare-keyword search without its trigram index: what the index buys (null when there is nothing to search). */
async function compareIlike (client: pg.ClientBase, params: BenchParams, rows: number, results: EndpointResult[], log: Logger): Promise<IlikeResult | null> {
  const rare = params.rareKeywords.find((k) => k.matches > 0) ?? params.rareKeywords[0]
  if (rare === undefined || rows === 0) return null
  log('[bench] rare keyword: unindexed ILIKE vs the trigram index, median of 3 each…')
  const endpointP50 = results.find((r) => r.name === 'admin_search_rare')?.stats?.p50Ms ?? null
  const ilike = await measureIlike(client, rare.keyword, { endpointP50Ms: endpointP50 })
  log(`[bench] ILIKE unindexed ${ilike.unindexed_ms} ms, indexed ${ilike.indexed_ms} ms: ${ilike.speedup}x`)
  return ilike
}

/** The oldest 30 % purged through the service while self_list readers run (null when skipped). */
async function purgeUnderReaders (client: pg.ClientBase, o: BenchOptions, params: BenchParams, rows: number, results: EndpointResult[], service: ChildServer, log: Logger): Promise<PurgeResult | null> {
  const readers = buildEndpoints(params).find((e) => e.name === 'self_list') as EndpointSpec
  if (readers.skip !== undefined || rows === 0) {
    log(`[bench] purge: skipped (${readers.skip ?? 'empty table'})`)
    return null
  }
  const selfList = results.find((r) => r.name === 'self_list')?.stats
  const rate = o.purgeReadersRate ?? (selfList !== undefined && selfList !== null ? Math.max(1, Math.round(selfList.reqPerSec / 2)) : DEFAULT_READERS_RATE)
  log(`[bench] purge: deleting the oldest 30 % through DELETE /api/log/ while self_list readers run (${rate} req/s, evenly paced)…`)
  const purge = await runPurgePhase({
    client,
    serviceUrl: service.url,
    adminHeaders: userHeaders(params.admin),
    rows,
    readers: readers.next,
    connections: o.connections,
    readersRate: rate,
    beforeSeconds: Math.max(0.5, Math.min(o.duration, 5))
  })
  log(`[bench] purge: HTTP ${purge.status}, ${purge.deleted_rows.toLocaleString('en-US')} rows in ${purge.seconds} s (${purge.rows_per_sec.toLocaleString('en-US')} rows/s); readers p99 ${purge.readers_before.p99Ms} -> ${purge.readers_during.p99Ms} ms`)
  return purge
}

/** What a reader of the figures should know about this run's setting. */
function runNotes (rows: number, params: BenchParams, settled: SettleResult): string[] {
  const notes: string[] = []
  if (rows < TARGET_ROWS) notes.push(`The targets are set for ${TARGET_ROWS.toLocaleString('en-US')} rows; this table has ${rows.toLocaleString('en-US')}.`)
  const deepest = Math.max(0, ...params.deepCursors.map((c) => c.depth))
  if (params.deepCursors.length > 0 && deepest < DEEP_CURSOR_ROWS) {
    notes.push(`self_list_cursor_deep read ${deepest.toLocaleString('en-US')} rows deep, not ${DEEP_CURSOR_ROWS.toLocaleString('en-US')}: the heaviest user has ${(params.users.heavy[0]?.rows ?? 0).toLocaleString('en-US')} rows.`)
  }
  if (settled.autovacuum !== 'on') notes.push('autovacuum is off on this server: dead rows of earlier runs and purges stay until a VACUUM.')
  return notes
}

/** Everything one run found, gathered for the report and the table. */
interface RunFacts {
  o: BenchOptions
  started: number
  loadBefore: number
  db: DatabaseFacts
  settled: SettleResult
  params: BenchParams
  results: EndpointResult[]
  rows: EndpointRow[]
  ilike: IlikeResult | null
  purge: PurgeResult | null
  rss: RssReport
  checks: Check[]
  pass: boolean
  notes: string[]
  warnings: ReturnType<typeof serviceWarnings>
}

/** The JSON report written to --out (as kept in bench/results/). */
function buildReport (f: RunFacts) {
  const { o, db: { stats, machine } } = f
  return {
    date: new Date(f.started).toISOString(),
    wall_seconds: Math.round((Date.now() - f.started) / 100) / 10,
    options: {
      database_url: redactUrl(o.databaseUrl),
      duration: o.duration,
      connections: o.connections,
      warmup: o.warmup,
      only: o.only,
      skip_purge: o.skipPurge,
      rows: o.rows,
      purge_readers_rate: o.purgeReadersRate,
      vacuum: o.vacuum
    },
    settle: f.settled,
    // 1-minute load average: other work on the machine makes every number noisy.
    machine: { ...machine, loadavg_start: round2(f.loadBefore), loadavg_end: round2(os.loadavg()[0] ?? 0) },
    database: { rows: stats.rows, min_created_at: stats.minCreatedAt, max_created_at: stats.maxCreatedAt, logs_total_size_mb: f.db.logsSizeMb },
    service: { env: SERVICE_ENV, warnings: f.warnings.length, warning_samples: f.warnings.slice(0, 20) },
    baselines: { naive_sql: NAIVE_SQL, static: 'the newest 20 rows as a self-list page, loaded once, with a response schema' },
    params: describeParams(f.params),
    endpoints: Object.fromEntries(f.results.map((r, i) => {
      const row = f.rows[i]!
      return [r.name, statsJson(r, row.naiveRatio, row.pass, row.failures, row.target)]
    })),
    ilike: f.ilike,
    purge: f.purge,
    rss: f.rss,
    checks: f.checks,
    pass: f.pass,
    notes: f.notes
  }
}

/** The text printed at the end of a run. */
function formatOutcome (f: RunFacts): string {
  const { o, warnings, notes, db: { stats, machine } } = f
  const header = `${stats.rows.toLocaleString('en-US')} rows, ${o.connections} connections, ${o.duration} s per endpoint (+${o.warmup} s warm-up); ${machine.cpus} x ${machine.cpu_model}, node ${machine.node}; load average ${round2(f.loadBefore)} at the start`
  const warningText = warnings.length === 0 ? '' : `\n\nservice logged ${warnings.length} warnings/errors, e.g.:\n` + [...new Set(warnings.map((w) => `  ${w.msg}${w.err === undefined ? '' : `: ${w.err}`}`))].slice(0, 5).join('\n')
  return `${header}\n\n${formatTable(f.rows, f.checks)}${notes.length === 0 ? '' : `\n\n${notes.join('\n')}`}${warningText}\n\nJSON: ${o.out}`
}

export async function runBench (o: BenchOptions, log: Logger = defaultLog): Promise<BenchOutcome> {
  const started = Date.now()
  const loadBefore = os.loadavg()[0] ?? 0
  const client = new pg.Client({ connectionString: o.databaseUrl, application_name: 'log-bench' })
  await client.connect()
  const children: ChildServer[] = []
  try {
    const db = await inspectDatabase(client, o, log)
    const params: BenchParams = await sampleParams(client)
    if (params.admin.created) log(`[bench] no enabled admin with an access token: created user bench_admin (id ${params.admin.id})`)
    const endpoints = buildEndpoints(params).filter((e) => selected(o, e.name))
    const runPurge = selected(o, 'purge')
    const runIlike = selected(o, 'ilike')
    const { service, baselines } = await startServers(o, endpoints, runPurge, children, log)

    // The service has started (and folded what it could): settle before measuring.
    const settled = await settle(client, { vacuum: o.vacuum, log })
    log(`[bench] settled: ${settled.pending_deltas ?? 0} stat deltas folded in ${settled.waited_s} s; ${settled.vacuum_s === null ? 'no vacuum' : `VACUUM (ANALYZE) ${settled.vacuum_s} s`}; autovacuum ${settled.autovacuum}`)

    const rss: RssReport = { before_mb: null, after_mb: null, peak_mb: null, samples_mb: [] }
    if (service !== null) rss.before_mb = readRss(service.pid)?.rssMb ?? null
    const results = await measureEndpoints(o, endpoints, { service, baselines }, rss, log)
    const ilike = runIlike ? await compareIlike(client, params, db.stats.rows, results, log) : null
    const purge = runPurge && service !== null ? await purgeUnderReaders(client, o, params, db.stats.rows, results, service, log) : null

    if (service !== null) {
      const end = readRss(service.pid)
      rss.after_mb = end?.rssMb ?? null
      rss.peak_mb = end?.peakMb ?? null
    }
    const warnings = service === null ? [] : serviceWarnings(service.output())
    await Promise.all(children.splice(0).map((c) => c.stop()))

    const rows = summariseEndpoints(results)
    const checks: Check[] = [
      ...(runIlike ? [ilikeCheck(ilike)] : []),
      ...purgeChecks(purge),
      ...(service !== null ? [rssCheck(rss)] : [])
    ]
    const pass = ![...rows.map((r) => r.pass), ...checks.map((c) => c.pass)].includes(false)
    const notes = runNotes(db.stats.rows, params, settled)
    const facts: RunFacts = { o, started, loadBefore, db, settled, params, results, rows, ilike, purge, rss, checks, pass, notes, warnings }
    const report = buildReport(facts)
    mkdirSync(path.dirname(o.out), { recursive: true })
    writeFileSync(o.out, JSON.stringify(report, null, 2) + '\n')
    return { report, table: formatOutcome(facts), results, pass }
  } finally {
    await Promise.all(children.map((c) => c.stop()))
    await client.end()
  }
}
