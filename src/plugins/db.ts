import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type pg from 'pg'
import { createDb, createPool } from '../db/pool.js'
import type { Database } from '../db/types.js'

export interface DbPluginOptions {
  connectionString: string
  poolMax: number
  statementTimeoutMs: number
  connectTimeoutMs: number
  preparedStatements: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    /** the pool under db, for what Kysely cannot do (COPY) */
    pool: pg.Pool
    /**
     * Background work's own connections (the stat fold, vacuums): requests cannot starve it. Under
     * a load that kept every request connection busy, the fold waited its turn behind readers whose
     * every answer grew slower with the deltas it had not folded.
     */
    maintenanceDb: Kysely<Database>
  }
}

export default fp<DbPluginOptions>(async function dbPlugin (app, opts) {
  const poolOf = (max: number, applicationName: string) => {
    const pool = createPool({
      connectionString: opts.connectionString,
      max,
      applicationName,
      statementTimeoutMs: opts.statementTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs
    })
    // An idle client whose server went away emits 'error' on the pool; unhandled, that would
    // crash the process. The next query reconnects (or answers 503 while the server is down).
    pool.on('error', (err: Error & { code?: string }) => {
      app.log.warn({ code: err.code, reason: err.message, pool: applicationName }, 'idle database connection lost')
    })
    return pool
  }

  const pool = poolOf(opts.poolMax, 'log-service')
  const db = createDb(pool, { prepared: opts.preparedStatements })
  // Two: the fold, and a vacuum of logs after a purge, which may run for minutes beside it.
  const maintenanceDb = createDb(poolOf(2, 'log-service-maintenance'))
  app.decorate('db', db)
  app.decorate('pool', pool)
  app.decorate('maintenanceDb', maintenanceDb)
  app.addHook('onClose', async () => { await Promise.all([db.destroy(), maintenanceDb.destroy()]) })
}, { name: 'db', fastify: '5.x' })
