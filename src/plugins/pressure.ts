import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { OverloadedError } from '../errors.js'

// Load shedding: while the event loop lags or is busy beyond the configured limits, requests are
// answered 503 LOG_OVERLOADED with Retry-After at once, before auth or a query, so the backlog
// drains instead of every request timing out. under-pressure samples once a second.

export interface PressurePluginOptions {
  /** mean event loop delay over a sample above which requests are shed; 0 = off */
  maxEventLoopDelayMs: number
  /** share of a sample the event loop was busy above which requests are shed; 0 = off */
  maxEventLoopUtilization: number
  /** nothing is shed until this long after the app is ready (default STARTUP_GRACE_MS) */
  startupGraceMs?: number
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * false: answered even while overloaded. For /healthz (an overloaded process is alive),
     * /readyz and /metrics (how an operator sees the overload).
     */
    shedUnderPressure?: boolean
  }
}

/** A few samples: long enough for a backlog to drain, short enough that clients do not idle. */
export const OVERLOADED_RETRY_AFTER_S = 5

/**
 * Start-up (loading modules, compiling schemas, migrating) blocks the event loop for seconds, and
 * the first samples hold that delay: requests are not shed until this long after the app is ready.
 */
export const STARTUP_GRACE_MS = 3000

export default fp<PressurePluginOptions>(async function pressurePlugin (app, opts) {
  let armed = false
  app.addHook('onReady', async () => {
    setTimeout(() => { armed = true }, opts.startupGraceMs ?? STARTUP_GRACE_MS).unref()
  })
  await app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    maxEventLoopUtilization: opts.maxEventLoopUtilization,
    // The default, 'cumulative', averages since start-up: after an hour a minute of overload
    // would barely move it. Each sample's own utilization is what "busy now" means.
    eventLoopUtilizationMode: 'interval',
    // Rejecting goes through the error handler, so the answer is the one envelope.
    pressureHandler: async (request, reply) => {
      if (!armed || request.routeOptions.config.shedUnderPressure === false) return
      reply.header('retry-after', String(OVERLOADED_RETRY_AFTER_S))
      throw new OverloadedError(OVERLOADED_RETRY_AFTER_S)
    }
  })
}, { name: 'pressure', fastify: '5.x' })
