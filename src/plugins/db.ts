import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type pg from 'pg'
import { createDb, createPool } from '../db/pool.js'
import { ReplicaRouter } from '../db/replicas.js'
import type { Database } from '../db/types.js'

export interface DbPluginOptions {
  connectionString: string
  poolMax: number
  statementTimeoutMs: number
  connectTimeoutMs: number
  preparedStatements: boolean
  /** streaming replicas' URLs (DATABASE_READ_URL); none: every read goes to the primary */
  readConnectionStrings?: string[]
  readMaxLagMs?: number
  readLagCheckIntervalMs?: number
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
    /** the pool under maintenanceDb, for its gauges */
    maintenancePool: pg.Pool
    /**
     * For reads that may be a little behind (lists, stats, searches, exports, API-key lookups): a
     * replica within READ_MAX_LAG_MS, else the primary. Without DATABASE_READ_URL, app.db itself.
     * Writes, and reads that must see them (auth's user status), use app.db.
     */
    readDb: Kysely<Database>
    /** the connections under readDb, as a pool, for what Kysely cannot do (COPY) */
    readPool: pg.Pool
    /** the replicas' router, for their metrics; null without DATABASE_READ_URL */
    replicas: ReplicaRouter | null
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
  // Three: the fold, retention's purge, and the vacuum of logs after a purge, which may run for
  // minutes beside them.
  const maintenancePool = poolOf(3, 'log-service-maintenance')
  const maintenanceDb = createDb(maintenancePool)
  app.decorate('db', db)
  app.decorate('pool', pool)
  app.decorate('maintenanceDb', maintenanceDb)
  app.decorate('maintenancePool', maintenancePool)

  const readUrls = opts.readConnectionStrings ?? []
  const replicas = readUrls.length === 0
    ? null
    : new ReplicaRouter({
      connectionStrings: readUrls,
      primary: pool,
      primaryConnectionString: opts.connectionString,
      poolMax: opts.poolMax,
      statementTimeoutMs: opts.statementTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs,
      maxLagMs: opts.readMaxLagMs ?? 5000,
      checkIntervalMs: opts.readLagCheckIntervalMs ?? 1000,
      log: app.log
    })
  const readDb = replicas === null ? db : createDb(replicas.asPool(), { prepared: opts.preparedStatements })
  app.decorate('readDb', readDb)
  app.decorate('readPool', replicas === null ? pool : replicas.asPool())
  app.decorate('replicas', replicas)
  replicas?.start()
  // readDb first: its reads may be on primary connections, which db's destroy ends.
  app.addHook('onClose', async () => {
    if (readDb !== db) await readDb.destroy()
    await Promise.all([db.destroy(), maintenanceDb.destroy()])
  })
}, { name: 'db', fastify: '5.x' })
