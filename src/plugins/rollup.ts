import fp from 'fastify-plugin'
import { FOLD_CHUNK, foldStatDeltas, ROLLUP_TABLES, vacuumStatTables } from '../queries/rollup.js'

// The rollups' own dead rows (one per upserted hour) matter less; a vacuum a minute is plenty.
const ROLLUP_VACUUM_INTERVAL_MS = 60_000

export interface RollupPluginOptions {
  /** how often the triggers' deltas are folded into the rollups; 0 turns folding off */
  intervalMs: number
}

/**
 * Folds stat deltas in the background. Answers are exact without it (readers add pending
 * deltas); folding keeps the delta table small so those reads stay cheap.
 */
export default fp<RollupPluginOptions>(async function rollupPlugin (app, opts) {
  if (opts.intervalMs === 0) return
  let running: Promise<void> | null = null

  let lastRollupVacuum = Date.now()

  async function foldAndVacuum () {
    // Chunks, until the backlog is gone or this tick has had its share of time.
    const started = Date.now()
    let folded = 0
    for (let moved = FOLD_CHUNK; moved === FOLD_CHUNK && Date.now() - started < opts.intervalMs;) {
      moved = await foldStatDeltas(app.db)
      folded += moved
    }
    if (folded === 0) return
    // Every fold leaves the delta rows it moved dead, and every reader scans that small table:
    // vacuumed here rather than left to autovacuum, which may be slow to notice or turned off.
    await vacuumStatTables(app.db, ['logs_stat_delta'])
    if (Date.now() - lastRollupVacuum > ROLLUP_VACUUM_INTERVAL_MS) {
      lastRollupVacuum = Date.now()
      await vacuumStatTables(app.db, ROLLUP_TABLES)
    }
  }

  function fold () {
    if (running !== null) return
    running = foldAndVacuum()
      .then(() => {}, (err: unknown) => { app.log.warn({ err }, 'folding stat deltas failed') })
      .finally(() => { running = null })
  }

  const timer = setInterval(fold, opts.intervalMs)
  timer.unref()
  app.addHook('onReady', async () => { fold() })
  app.addHook('preClose', async () => {
    clearInterval(timer)
    await running
  })
}, { name: 'rollup', fastify: '5.x', dependencies: ['db'] })
