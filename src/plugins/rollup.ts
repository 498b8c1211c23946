import fp from 'fastify-plugin'
import { foldStatDeltas } from '../queries/rollup.js'

export interface RollupPluginOptions {
  /** how often the triggers' deltas are folded into the hourly rollups; 0 turns folding off */
  intervalMs: number
}

/**
 * Folds stat deltas in the background. Answers are exact without it (readers add pending
 * deltas); folding keeps the delta table small so those reads stay cheap.
 */
export default fp<RollupPluginOptions>(async function rollupPlugin (app, opts) {
  if (opts.intervalMs === 0) return
  let running: Promise<void> | null = null

  function fold () {
    if (running !== null) return
    running = foldStatDeltas(app.db)
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
