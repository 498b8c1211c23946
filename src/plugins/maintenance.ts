import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../db/types.js'
import { FOLD_CHUNK, foldStatDeltas } from '../queries/rollups/fold.js'
import { DELTA_TABLE, ROLLUPS } from '../queries/rollups/model.js'
import { vacuumLogsInBackground, vacuumStatTables, type BackgroundVacuum } from '../queries/vacuum.js'

// The service's background work, in one place: the stat fold on a timer, the VACUUM of logs a
// purge asks for, and (later) retention. Each job runs one at a time, stops on close, and keeps a
// status that metrics can read.

export interface MaintenancePluginOptions {
  /** how often the triggers' deltas are folded into the rollups; 0 turns folding off */
  foldIntervalMs: number
  /**
   * how often a fold that moved deltas also vacuums the rollups: their own dead rows (one per
   * upserted unit) matter less than the deltas', and a vacuum a minute is plenty
   */
  rollupVacuumIntervalMs?: number
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
}

export interface Maintenance {
  /** Starts a throttled VACUUM of logs in the background, unless one runs (after a purge). */
  vacuumLogs: () => void
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

export default fp<MaintenancePluginOptions>(async function maintenancePlugin (app, opts) {
  const fold = createJob('folding stat deltas', app.log)
  const vacuum = createJob('vacuum of logs after the purge', app.log)
  const folder = createFolder(app.maintenanceDb, opts)
  const foldNow = () => fold.start(folder.run)
  let vacuumsCancelled = 0
  let runningVacuum: BackgroundVacuum | null = null

  app.decorate('maintenance', {
    vacuumLogs () {
      vacuum.start(async () => {
        runningVacuum = vacuumLogsInBackground(app.maintenanceDb)
        try {
          await runningVacuum.done
          app.log.info('vacuumed logs after the purge')
        } finally {
          runningVacuum = null
        }
      })
    },
    status: () => ({
      fold: { ...fold.status, enabled: opts.foldIntervalMs > 0, deltasFolded: folder.folded() },
      vacuum: { ...vacuum.status, cancelled: vacuumsCancelled }
    })
  })

  let timer: NodeJS.Timeout | null = null
  if (opts.foldIntervalMs > 0) {
    timer = setInterval(foldNow, opts.foldIntervalMs)
    timer.unref()
    app.addHook('onReady', async () => { foldNow() })
  }

  app.addHook('preClose', async () => {
    if (timer !== null) clearInterval(timer)
    await fold.current()
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
