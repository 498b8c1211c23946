import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type pg from 'pg'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { isOwnCode } from '../errors.js'
import { singleFlight, TIMED_OUT, withDeadline } from '../lib/single-flight.js'
import { foldBacklog, type FoldBacklog } from '../queries/rollups/backlog.js'
import { DELTA_SECONDS } from '../queries/rollups/model.js'
import type { MaintenanceStatus } from './maintenance.js'
import type { ReplicaStatus } from '../db/replicas.js'

// Prometheus metrics of one app instance: its own registry (several apps share a test process,
// and the global registry would mix them), the runtime's default metrics under their usual names
// (process_*, nodejs_*: what existing dashboards and alerts expect), and ours under log_service_.
// GET /metrics (routes/metrics.ts) serves the registry.

export const METRIC_PREFIX = 'log_service_'

/** How long a scrape waits for the fold backlog; a busy maintenance pool must not stall it. */
const BACKLOG_TIMEOUT_MS = 500

export interface Metrics {
  registry: Registry
  /** log rows written by POST /api/log/, by body: `batch` (JSON) or `ndjson` */
  ingestedRows: Counter<'path'>
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/** The operationId of the route that answered: a bounded label. */
function operationOf (request: FastifyRequest): string {
  const id = request.routeOptions.schema?.operationId
  if (id !== undefined) return id
  if (request.is404) return 'not_found'
  // Routes without an operationId (/openapi.json, /docs): their URL pattern, as bounded.
  return request.routeOptions.url ?? 'unknown'
}

/** The envelope's code of an error answer; only codes of ours, so the label stays bounded. */
function errorCodeOf (payload: unknown): string {
  if (typeof payload !== 'string') return 'unknown'
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code
    return typeof code === 'string' && isOwnCode(code) ? code : 'unknown'
  } catch {
    return 'unknown'
  }
}

const unixSeconds = (ms: number | null) => ms === null ? 0 : ms / 1000

type Jobs = Record<'fold' | 'vacuum' | 'purge' | 'retention' | 'partitions', { running: boolean, runs: number, failures?: number, lastEndedAt: number | null }>
const jobsOf = (s: MaintenanceStatus): Jobs => ({ fold: s.fold, vacuum: s.vacuum, purge: s.purge, retention: s.retention, partitions: s.partitions })

export default fp(async function metricsPlugin (app) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const name = (s: string) => METRIC_PREFIX + s

  // Requests and errors, counted as they leave.
  const requests = new Counter({ name: name('http_requests_total'), help: 'HTTP requests answered, by operationId and status', labelNames: ['operation', 'status'], registers: [registry] })
  const duration = new Histogram({ name: name('http_request_duration_seconds'), help: 'Time to answer, by operationId and status', labelNames: ['operation', 'status'], registers: [registry] })
  const errors = new Counter({ name: name('http_errors_total'), help: 'Error answers, by the envelope\'s code and operationId', labelNames: ['code', 'operation'], registers: [registry] })
  const ingestedRows = new Counter({ name: name('ingested_rows_total'), help: 'Log rows written by POST /api/log/, by body (batch: JSON, ndjson: backfill)', labelNames: ['path'], registers: [registry] })
  // Both series from the start, so that rate() sees the first rows.
  for (const path of ['batch', 'ndjson']) ingestedRows.inc({ path }, 0)

  // Every error answer is the envelope (error-handler.ts, readiness): its code is read here, at
  // one place, rather than by each of the places that answer one.
  app.addHook('onSend', function countError (request, reply, payload, done) {
    if (reply.statusCode >= 400) errors.inc({ code: errorCodeOf(payload), operation: operationOf(request) })
    done(null, payload)
  })
  app.addHook('onResponse', function countRequest (request, reply, done) {
    const labels = { operation: operationOf(request), status: reply.statusCode }
    requests.inc(labels)
    duration.observe(labels, reply.elapsedTime / 1000)
    done()
  })

  const pools: Array<[string, pg.Pool]> = [['request', app.pool], ['maintenance', app.maintenancePool]]
  for (const [index, pool] of (app.replicas?.pools ?? []).entries()) pools.push([`replica-${index}`, pool])
  const poolGauge = (metric: string, help: string, read: (pool: pg.Pool) => number) => new Gauge({
    name: name(metric),
    help,
    labelNames: ['pool'],
    registers: [registry],
    collect () { for (const [label, pool] of pools) this.set({ pool: label }, read(pool)) }
  })
  poolGauge('db_pool_max', 'Connections the pool may open', (pool) => pool.options.max ?? 0)
  poolGauge('db_pool_size', 'Connections open (busy and idle)', (pool) => pool.totalCount)
  poolGauge('db_pool_idle', 'Connections open and idle', (pool) => pool.idleCount)
  poolGauge('db_pool_waiting', 'Queries waiting for a connection', (pool) => pool.waitingCount)

  // Read replicas (DATABASE_READ_URL), as their router saw them at its last probe; labelled by
  // their index in the list, never their URL (it may hold a password).
  const replicas = app.replicas
  if (replicas !== null) {
    /** One series per replica: a gauge of its current state, or a counter of its running total. */
    const perReplica = (kind: 'gauge' | 'counter', metric: string, help: string, read: (r: ReplicaStatus) => number) => {
      const config = { name: name(metric), help, labelNames: ['replica'] as const, registers: [] }
      registry.registerMetric(kind === 'gauge'
        ? new Gauge({ ...config, collect () { for (const r of replicas.status()) this.set({ replica: String(r.index) }, read(r)) } })
        : new Counter({ ...config, collect () { this.reset(); for (const r of replicas.status()) this.inc({ replica: String(r.index) }, read(r)) } }))
    }
    perReplica('gauge', 'replica_up', '1 while the replica answers its probes as a server in recovery (and no read has lost its connection since)', (r) => r.up ? 1 : 0)
    perReplica('gauge', 'replica_lag_seconds', 'Replay lag at the last probe: age of the last replayed commit, 0 once all the primary had written is replayed; -1 when unknown (down)', (r) => r.lagMs === null ? -1 : r.lagMs / 1000)
    perReplica('counter', 'replica_reads_total', 'Reads (connection checkouts) the replica served', (r) => r.reads)
    perReplica('counter', 'replica_conflicts_total', 'Statements the replica cancelled for a conflict with replay (SQLSTATE 40001 or 40P01), run again on the primary', (r) => r.conflicts)
    registry.registerMetric(new Counter({
      name: name('read_fallbacks_total'),
      help: 'Reads (connection checkouts) sent to the primary because no replica was within READ_MAX_LAG_MS, or the one chosen was lost or cancelled the statement for a conflict with replay',
      registers: [],
      collect () { this.reset(); this.inc(replicas.fallbacks) }
    }))
  }

  // The fold backlog: one query per scrape (both gauges share it), -1 when it failed or was slow.
  const readBacklog = singleFlight(() => foldBacklog(app.maintenanceDb, BACKLOG_TIMEOUT_MS))
  const backlog = async (): Promise<FoldBacklog | null> => {
    try {
      const result = await withDeadline(readBacklog(), BACKLOG_TIMEOUT_MS)
      return result === TIMED_OUT ? null : result
    } catch (err) {
      app.log.debug({ err }, 'fold backlog not read')
      return null
    }
  }
  registry.registerMetric(new Gauge({
    name: name('stat_fold_backlog_rows'),
    help: 'Stat delta rows waiting to be folded into the rollups; -1 when not read within 500 ms',
    registers: [],
    async collect () { this.set((await backlog())?.rows ?? -1) }
  }))
  registry.registerMetric(new Gauge({
    name: name('stat_fold_lag_seconds'),
    help: 'Age of the oldest unfolded stat delta (from the end of its rows\' minute; 0 when none); -1 when not read within 500 ms',
    registers: [],
    async collect () {
      const b = await backlog()
      if (b === null) this.set(-1)
      else this.set(b.oldestAt === null ? 0 : Math.max(0, Date.now() / 1000 - (b.oldestAt + DELTA_SECONDS)))
    }
  }))

  // Background work, as app.maintenance reports it. Counters mirror the status's running totals.
  const status = () => app.maintenance.status()
  const mirror = (metric: string, help: string, read: (s: MaintenanceStatus) => number) => new Counter({
    name: name(metric),
    help,
    registers: [registry],
    collect () { this.reset(); this.inc(read(status())) }
  })
  const gauge = (metric: string, help: string, read: (s: MaintenanceStatus) => number) => new Gauge({
    name: name(metric),
    help,
    registers: [registry],
    collect () { this.set(read(status())) }
  })
  const jobGauge = (metric: string, help: string, read: (job: Jobs[keyof Jobs]) => number | undefined) => new Gauge({
    name: name(metric),
    help,
    labelNames: ['job'],
    registers: [registry],
    collect () {
      for (const [job, s] of Object.entries(jobsOf(status()))) {
        const value = read(s)
        if (value !== undefined) this.set({ job }, value)
      }
    }
  })
  const jobCounter = (metric: string, help: string, read: (job: Jobs[keyof Jobs]) => number | undefined) => new Counter({
    name: name(metric),
    help,
    labelNames: ['job'],
    registers: [registry],
    collect () {
      this.reset()
      for (const [job, s] of Object.entries(jobsOf(status()))) {
        const value = read(s)
        if (value !== undefined) this.inc({ job }, value)
      }
    }
  })
  jobGauge('maintenance_running', '1 while the job runs: fold, vacuum, purge (API or retention), retention, partitions (created ahead)', (job) => job.running ? 1 : 0)
  jobCounter('maintenance_runs_total', 'Runs of the job that ended', (job) => job.runs)
  jobCounter('maintenance_failures_total', 'Runs of the job that failed (purges are interrupted, not failed)', (job) => job.failures)
  jobGauge('maintenance_last_end_timestamp_seconds', 'Unix time the job\'s last run ended; 0 = never', (job) => unixSeconds(job.lastEndedAt))
  mirror('stat_fold_deltas_folded_total', 'Stat delta rows folded into the rollups', (s) => s.fold.deltasFolded)
  mirror('purge_rows_deleted_total', 'Log rows deleted by purges (the API\'s and retention\'s)', (s) => s.purge.rowsDeleted)
  mirror('purge_interrupted_total', 'Purges stopped at a batch boundary by shutdown', (s) => s.purge.interrupted)
  gauge('purge_current_rows_deleted', 'Rows deleted so far by the running purge', (s) => s.purge.running ? s.purge.currentRowsDeleted : 0)
  gauge('retention_enabled', '1 when LOG_RETENTION_DAYS is set', (s) => s.retention.enabled ? 1 : 0)
  gauge('retention_days', 'Days of history retention keeps; 0 when off', (s) => s.retention.days ?? 0)
  gauge('retention_cutoff_timestamp_seconds', 'Unix time below which the last retention run deleted; 0 = none yet', (s) => s.retention.lastCutoff ?? 0)
  mirror('retention_rows_deleted_total', 'Log rows deleted by retention', (s) => s.retention.rowsDeleted)
  mirror('retention_skipped_total', 'Retention runs that found another purge under way', (s) => s.retention.skipped)
  mirror('partitions_created_total', 'Partitions of logs the maintenance job created ahead (partitioned layout)', (s) => s.partitions.created)

  if (app.hasDecorator('isUnderPressure')) {
    registry.registerMetric(new Gauge({
      name: name('overloaded'),
      help: '1 while load shedding answers 503 LOG_OVERLOADED',
      registers: [],
      collect () { this.set(app.isUnderPressure() ? 1 : 0) }
    }))
  }

  app.decorate('metrics', { registry, ingestedRows })
}, { name: 'metrics', fastify: '5.x', dependencies: ['db', 'maintenance'] })
