import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../db/types.js'
import { ensurePartitions, periodAhead, readLayout, type PartitionGrain } from '../queries/partitions.js'
import { purgeLogsBefore, PurgeStoppedError } from '../queries/purge.js'
import { FOLD_CHUNK, foldStatDeltas } from '../queries/rollups/fold.js'
import { DELTA_TABLE, ROLLUPS } from '../queries/rollups/model.js'
import { vacuumLogsInBackground, vacuumStatTables, type BackgroundVacuum } from '../queries/vacuum.js'

// The service's background work, in one place: the stat fold on a timer, history purges (the
// API's and retention's), the VACUUM of logs a purge asks for. Each job runs one at a time, stops
// on close, and keeps a status that metrics read.

export interface MaintenancePluginOptions {
  /** how often the triggers' deltas are folded into the rollups; 0 turns folding off */
  foldIntervalMs: number
  /**
   * how often a fold that moved deltas also vacuums the rollups: their own dead rows (one per
   * upserted unit) matter less than the deltas', and a vacuum a minute is plenty
   */
  rollupVacuumIntervalMs?: number
  /** purge batch sizes, as for the API's purge */
  purge: { batchSize: number, unitMaxRows: number }
  /** days of history retention keeps; undefined turns retention off */
  retentionDays?: number
  /** how often retention runs */
  retentionIntervalMs: number
  /** how long after start-up retention first runs (within a minute, not at once: start-up stays light) */
  retentionFirstDelayMs?: number
  /** how often partitions are created ahead, on the partitioned layout (hourly) */
  partitionUpkeepIntervalMs?: number
  /** how long after start-up partitions are first created ahead (not at once: start-up stays light) */
  partitionUpkeepFirstDelayMs?: number
}

export type PurgeSource = 'api' | 'retention'

export interface PurgeRequest {
  source: PurgeSource
  onBatch?: (deleted: number, total: number) => void
}

export interface JobStatus {
  running: boolean
  runs: number
  failures: number
  /** unix ms of the last run's end */
  lastEndedAt: number | null
  lastError: string | null
}

export interface MaintenanceStatus {
  fold: JobStatus & { enabled: boolean, deltasFolded: number }
  vacuum: JobStatus & { cancelled: number }
  purge: {
    running: boolean
    source: PurgeSource | null
    runs: number
    /** purges stopped at a batch boundary by shutdown */
    interrupted: number
    /** rows deleted by every purge of this process */
    rowsDeleted: number
    /** rows deleted so far by the running purge */
    currentRowsDeleted: number
    lastEndedAt: number | null
  }
  retention: JobStatus & {
    enabled: boolean
    days: number | null
    rowsDeleted: number
    /** unix seconds below which the last run deleted */
    lastCutoff: number | null
    /** runs that found another purge under way (an API purge, or another instance's retention) */
    skipped: number
  }
  partitions: JobStatus & {
    /** the database's layout as last read: null on the plain table */
    grain: PartitionGrain | null
    created: number
  }
}

export interface Maintenance {
  /** Starts a throttled VACUUM of logs in the background, unless one runs (after a purge). */
  vacuumLogs: () => void
  /**
   * Deletes history below `before` (unix seconds) in batches, one purge at a time across every
   * instance; null when another holds the lock. Throws PurgeStoppedError when shutdown stopped it
   * at a batch boundary. A purge that deleted rows leaves a VACUUM of logs running behind it, and
   * the DROPs of the partitions it detached (see reclaimed).
   */
  purge: (db: Kysely<Database>, before: number, request: PurgeRequest) => Promise<number | null>
  /**
   * Settles once the DROPs of the partitions purges detached have ended: they run after a purge
   * answers, as its VACUUM does, and one that fails is logged and left to the next purge.
   */
  reclaimed: () => Promise<void>
  /** aborted as the service starts to close: long work stops at its next safe point */
  closing: AbortSignal
  status: () => MaintenanceStatus
}

declare module 'fastify' {
  interface FastifyInstance {
    maintenance: Maintenance
  }
}

/** One background job: runs one at a time, logs its failures instead of throwing, counts. */
function createJob (name: string, log: FastifyBaseLogger) {
  const status: JobStatus = { running: false, runs: 0, failures: 0, lastEndedAt: null, lastError: null }
  let current: Promise<void> | null = null
  return {
    status,
    current: () => current,
    /** Runs `work` unless a run is under way; false if it did not start. */
    start (work: () => Promise<void>): boolean {
      if (current !== null) return false
      status.running = true
      current = work()
        .then(() => { status.lastError = null }, (err: unknown) => {
          status.failures++
          status.lastError = err instanceof Error ? err.message : String(err)
          log.warn({ err }, `${name} failed`)
        })
        .finally(() => {
          status.runs++
          status.running = false
          status.lastEndedAt = Date.now()
          current = null
        })
      return true
    }
  }
}

/**
 * One fold tick: chunks until the backlog is gone or the tick has had its share of time, then the
 * vacuums the folded deltas (and now and then the rollups) leave due.
 */
function createFolder (db: Kysely<Database>, opts: MaintenancePluginOptions) {
  let deltasFolded = 0
  let lastRollupVacuum = Date.now()
  return {
    folded: () => deltasFolded,
    async run () {
      const started = Date.now()
      let folded = 0
      for (let moved = FOLD_CHUNK; moved === FOLD_CHUNK && Date.now() - started < opts.foldIntervalMs;) {
        moved = await foldStatDeltas(db)
        folded += moved
      }
      deltasFolded += folded
      if (folded === 0) return
      // Every fold leaves the delta rows it moved dead, and every reader scans that small table:
      // vacuumed here rather than left to autovacuum, which may be slow to notice or turned off.
      await vacuumStatTables(db, [DELTA_TABLE])
      if (Date.now() - lastRollupVacuum >= (opts.rollupVacuumIntervalMs ?? 60_000)) {
        lastRollupVacuum = Date.now()
        await vacuumStatTables(db, ROLLUPS.map((r) => r.table))
      }
    }
  }
}

/** Retention: a purge of what is older than the kept days, on a timer, logged and counted. */
function createRetention (app: FastifyInstance, opts: MaintenancePluginOptions, job: ReturnType<typeof createJob>) {
  const days = opts.retentionDays
  let rowsDeleted = 0
  let lastCutoff: number | null = null
  let skipped = 0
  return {
    current: job.current,
    status: () => ({ ...job.status, enabled: days !== undefined, days: days ?? null, rowsDeleted, lastCutoff, skipped }),
    run: () => job.start(async () => {
      if (days === undefined || app.maintenance.closing.aborted) return
      const cutoff = Math.floor(Date.now() / 1000) - days * 86_400
      const deleted = await app.maintenance.purge(app.maintenanceDb, cutoff, { source: 'retention' })
        .catch((err: unknown) => {
          // Shutdown: what was deleted is committed; the next start goes on from there.
          if (err instanceof PurgeStoppedError) return err.deleted
          throw err
        })
      if (deleted === null) {
        skipped++
        app.log.info({ days, cutoff }, 'retention skipped: another purge is under way')
        return
      }
      rowsDeleted += deleted
      lastCutoff = cutoff
      app.log.info({ days, cutoff, deleted }, `retention deleted ${deleted} rows older than ${days} days`)
    })
  }
}

/**
 * Partitions ahead of time on the partitioned layout: the current period and PERIODS_AHEAD more,
 * so rows never wait in the default partition for want of one. Follows the database's layout,
 * whatever LOG_PARTITIONS says: a partitioned table keeps getting partitions.
 */
function createPartitionUpkeep (app: FastifyInstance, job: ReturnType<typeof createJob>) {
  let grain: PartitionGrain | null = null
  let created = 0
  return {
    current: job.current,
    status: () => ({ ...job.status, grain, created }),
    run: () => job.start(async () => {
      if (app.maintenance.closing.aborted) return
      const layout = await readLayout(app.maintenanceDb)
      grain = layout.partitioned ? layout.grain : null
      if (grain === null) return
      const now = Math.floor(Date.now() / 1000)
      const names = await ensurePartitions(app.maintenanceDb, grain, now, periodAhead(grain, now) - 1)
      created += names.length
      if (names.length > 0) app.log.info({ partitions: names }, `created ${names.length} partitions of logs`)
    })
  }
}

export default fp<MaintenancePluginOptions>(async function maintenancePlugin (app, opts) {
  const fold = createJob('folding stat deltas', app.log)
  const vacuum = createJob('vacuum of logs after the purge', app.log)
  const folder = createFolder(app.maintenanceDb, opts)
  const foldNow = () => fold.start(folder.run)
  let vacuumsCancelled = 0
  let runningVacuum: BackgroundVacuum | null = null
  const closing = new AbortController()
  const purge: MaintenanceStatus['purge'] = { running: false, source: null, runs: 0, interrupted: 0, rowsDeleted: 0, currentRowsDeleted: 0, lastEndedAt: null }

  // The DROPs each purge leaves behind (its rows are gone already), until they end.
  const reclaiming = new Set<Promise<void>>()
  const reclaim = (drops: Promise<void>) => {
    const tracked: Promise<void> = drops
      .catch((err: unknown) => { app.log.warn({ err }, 'dropping a partition the purge detached failed: the next purge drops it') })
      .finally(() => reclaiming.delete(tracked))
    reclaiming.add(tracked)
  }
  const reclaimed = async () => { await Promise.all([...reclaiming]) }

  const vacuumLogs = () => {
    vacuum.start(async () => {
      runningVacuum = vacuumLogsInBackground(app.maintenanceDb)
      try {
        await runningVacuum.done
        app.log.info('vacuumed logs after the purge')
      } finally {
        runningVacuum = null
      }
    })
  }

  app.decorate('maintenance', {
    vacuumLogs,
    reclaimed,
    closing: closing.signal,
    async purge (db, before, request) {
      let deleted: number | null = 0
      try {
        deleted = await purgeLogsBefore(db, {
          before,
          ...opts.purge,
          signal: closing.signal,
          reclaim,
          onBatch (n, total) {
            // Set only once the lock is held: another instance's purge is not this one's.
            purge.running = true
            purge.source = request.source
            purge.currentRowsDeleted = total
            purge.rowsDeleted += n
            request.onBatch?.(n, total)
          }
        })
        return deleted
      } catch (err) {
        if (err instanceof PurgeStoppedError) {
          purge.interrupted++
          deleted = err.deleted
        }
        throw err
      } finally {
        if (deleted !== null) {
          purge.runs++
          purge.lastEndedAt = Date.now()
          if (deleted > 0 && !closing.signal.aborted) vacuumLogs()
        }
        purge.running = false
        purge.source = null
        purge.currentRowsDeleted = 0
      }
    },
    status: () => ({
      fold: { ...fold.status, enabled: opts.foldIntervalMs > 0, deltasFolded: folder.folded() },
      vacuum: { ...vacuum.status, cancelled: vacuumsCancelled },
      purge: { ...purge },
      retention: retention.status(),
      partitions: upkeep.status()
    })
  })
  const retention = createRetention(app, opts, createJob('retention', app.log))
  const upkeep = createPartitionUpkeep(app, createJob('creating partitions of logs', app.log))

  const timers: NodeJS.Timeout[] = []
  const every = (ms: number, fn: () => unknown) => {
    const timer = setInterval(fn, ms)
    timer.unref()
    timers.push(timer)
  }
  if (opts.foldIntervalMs > 0) {
    every(opts.foldIntervalMs, foldNow)
    app.addHook('onReady', async () => { foldNow() })
  }
  if (opts.retentionDays !== undefined) {
    every(opts.retentionIntervalMs, retention.run)
    app.addHook('onReady', async () => {
      const first = setTimeout(retention.run, opts.retentionFirstDelayMs ?? 10_000)
      first.unref()
      timers.push(first)
    })
  }

  every(opts.partitionUpkeepIntervalMs ?? 3_600_000, upkeep.run)
  // The conversion made partitions a week or two months ahead: the first run need not hurry.
  app.addHook('onReady', async () => {
    const first = setTimeout(upkeep.run, opts.partitionUpkeepFirstDelayMs ?? 10_000)
    first.unref()
    timers.push(first)
  })

  app.addHook('preClose', async () => {
    for (const timer of timers) clearTimeout(timer)
    // A purge under way (the API's or retention's) stops at its next batch boundary.
    closing.abort()
    await fold.current()
    await retention.current()
    await upkeep.current()
    await reclaimed()
    // Shutdown does not wait for a long vacuum: it is cancelled (a VACUUM stops cleanly) and
    // autovacuum, or the next purge, does the rest.
    const running = runningVacuum
    if (running !== null) {
      vacuumsCancelled++
      await running.cancel()
    }
    await vacuum.current()
  })
}, { name: 'maintenance', fastify: '5.x', dependencies: ['db'] })
