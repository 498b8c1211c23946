import { Type, type FastifyPluginAsyncTypebox, type Static } from '@fastify/type-provider-typebox'
import { migrationNames, pendingMigrations } from '../db/migrate.js'
import { createDb, createPool } from '../db/pool.js'
import { errorEnvelope } from '../error-handler.js'
import { singleFlight, TIMED_OUT, withDeadline } from '../lib/single-flight.js'
import { Envelope, errorResponses, ok } from '../schemas/common.js'
import { descriptions } from './log/descriptions.js'

// GET /healthz (liveness) and GET /readyz (readiness), for orchestrators and load balancers.

export interface HealthRoutesOptions {
  connectionString: string
  connectTimeoutMs: number
}

/** /readyz answers within this, whatever the database does. */
export const READY_TIMEOUT_MS = 1000

const ReadinessSchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  database: Type.Union([Type.Literal('ok'), Type.Literal('unavailable'), Type.Literal('timeout')], { description: 'timeout: no answer within a second' }),
  migrations: Type.Union([Type.Literal('current'), Type.Literal('pending'), Type.Literal('unknown')], { description: 'unknown while the database does not answer' })
})
type Readiness = Static<typeof ReadinessSchema>

const AliveResponseSchema = Envelope(Type.Object({ status: Type.Literal('ok') }), {
  description: 'The process runs',
  examples: [{ success: true, message: '', data: { status: 'ok' } }]
})

const ReadyResponseSchema = Envelope(ReadinessSchema, {
  description: 'The database answers and its migrations are current',
  examples: [{ success: true, message: '', data: { status: 'ready', database: 'ok', migrations: 'current' } }]
})

// The error envelope, with the readiness beside it so that a probe's log says which check failed.
const NotReadyResponseSchema = Type.Object({
  success: Type.Literal(false),
  message: Type.String(),
  code: Type.Union([Type.Literal('LOG_DB_UNAVAILABLE'), Type.Literal('LOG_NOT_READY')]),
  data: ReadinessSchema
}, {
  description: 'Not ready: the database is unreachable, too slow, or lacks migrations this version needs',
  headers: { 'Retry-After': Type.Integer({ minimum: 0, description: 'seconds to wait before probing again' }) },
  examples: [{ success: false, message: 'database did not answer within 1 s', code: 'LOG_DB_UNAVAILABLE', data: { status: 'not_ready', database: 'timeout', migrations: 'unknown' } }]
})

const NOT_READY_MESSAGES: Record<Exclude<Readiness['database'], 'ok'> | 'pending', string> = {
  unavailable: 'database unavailable',
  timeout: `database did not answer within ${READY_TIMEOUT_MS / 1000} s`,
  pending: 'database migrations pending'
}

const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  // Readiness asks its own one-connection pool. Not the request pool: under a load that keeps
  // every request connection busy, readiness would time out on a healthy database and the
  // orchestrator would pull every instance at once, the moment they are needed most (load is
  // shed with 503 LOG_OVERLOADED instead). Not the maintenance pool either: a retention purge, a
  // vacuum and the fold can hold all of its connections for minutes. The connection attempt is
  // given up soon after the answer's deadline: past it, nobody waits for the result.
  const probePool = createPool({
    connectionString: opts.connectionString,
    max: 1,
    applicationName: 'log-service-probe',
    statementTimeoutMs: READY_TIMEOUT_MS,
    connectTimeoutMs: Math.min(opts.connectTimeoutMs, 2 * READY_TIMEOUT_MS)
  })
  probePool.on('error', (err: Error & { code?: string }) => {
    app.log.debug({ code: err.code, reason: err.message }, 'idle probe connection lost')
  })
  const probeDb = createDb(probePool)
  app.addHook('onClose', async () => { await probeDb.destroy() })

  const expected = await migrationNames()
  let cause: unknown = null
  const check = singleFlight(async (): Promise<Readiness> => {
    try {
      const pending = await pendingMigrations(probeDb, expected)
      cause = pending.length === 0 ? null : { pending }
      return { status: pending.length === 0 ? 'ready' : 'not_ready', database: 'ok', migrations: pending.length === 0 ? 'current' : 'pending' }
    } catch (err) {
      cause = err
      return { status: 'not_ready', database: 'unavailable', migrations: 'unknown' }
    }
  })

  // Logged when readiness changes, not at every probe.
  let last = 'ready/ok/current'
  const note = (readiness: Readiness) => {
    const key = `${readiness.status}/${readiness.database}/${readiness.migrations}`
    if (key === last) return
    last = key
    if (readiness.status === 'ready') return app.log.info('ready')
    // A check cut by the timer has not failed yet: the cause of an earlier one would mislead.
    const detail = readiness.database === 'timeout' ? {} : cause instanceof Error ? { err: cause } : { cause }
    app.log.warn({ readiness, ...detail }, 'not ready')
  }

  app.get('/healthz', {
    schema: {
      operationId: 'healthz',
      description: descriptions.healthz,
      security: [],
      summary: 'Liveness: 200 while the process runs (no database call)',
      tags: ['ops'],
      // 400: a malformed query string is refused before any route (app.ts).
      response: { 200: AliveResponseSchema, ...errorResponses(400) }
    },
    config: { shedUnderPressure: false },
    logLevel: 'warn'
  }, async () => ok({ status: 'ok' as const }))

  app.get('/readyz', {
    schema: {
      operationId: 'readyz',
      description: descriptions.readyz,
      security: [],
      summary: 'Readiness: 200 when the database answers and migrations are current, else 503',
      tags: ['ops'],
      response: { 200: ReadyResponseSchema, 503: NotReadyResponseSchema, ...errorResponses(400) }
    },
    config: { shedUnderPressure: false },
    logLevel: 'warn'
  }, async (_request, reply) => {
    const outcome = await withDeadline(check(), READY_TIMEOUT_MS)
    const readiness: Readiness = outcome === TIMED_OUT ? { status: 'not_ready', database: 'timeout', migrations: 'unknown' } : outcome
    note(readiness)
    if (readiness.status === 'ready') return ok(readiness)
    const message = readiness.database === 'ok' ? NOT_READY_MESSAGES.pending : NOT_READY_MESSAGES[readiness.database]
    reply.code(503).header('retry-after', '1')
    return { ...errorEnvelope(message, readiness.database === 'ok' ? 'LOG_NOT_READY' : 'LOG_DB_UNAVAILABLE'), data: readiness }
  })
}

export default healthRoutes
