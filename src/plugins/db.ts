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
  }
}

export default fp<DbPluginOptions>(async function dbPlugin (app, opts) {
  const pool = createPool({
    connectionString: opts.connectionString,
    max: opts.poolMax,
    statementTimeoutMs: opts.statementTimeoutMs,
    connectTimeoutMs: opts.connectTimeoutMs
  })
  // An idle client whose server went away emits 'error' on the pool; unhandled, that would
  // crash the process. The next query reconnects (or answers 503 while the server is down).
  pool.on('error', (err: Error & { code?: string }) => {
    app.log.warn({ code: err.code, reason: err.message }, 'idle database connection lost')
  })

  const db = createDb(pool, { prepared: opts.preparedStatements })
  app.decorate('db', db)
  app.decorate('pool', pool)
  app.addHook('onClose', async () => { await db.destroy() })
}, { name: 'db', fastify: '5.x' })
