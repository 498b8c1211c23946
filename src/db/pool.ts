import pg from 'pg'
import { Kysely } from 'kysely'
import { PlannedPostgresDialect } from './driver.js'
import type { Database } from './types.js'

export interface PoolOptions {
  connectionString: string
  max?: number
  statementTimeoutMs?: number
  connectTimeoutMs?: number
  applicationName?: string
}

const types = new pg.TypeOverrides()
// int8 (ids, created_at, quota, count(*)) as numbers: every value this service stores fits in
// 2^53, and the contract wants JSON numbers, never strings.
types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v))
types.setTypeParser(pg.types.builtins.NUMERIC, (v: string) => Number(v))

export function createPool (opts: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    types,
    application_name: opts.applicationName ?? 'log-service',
    // Bounds every statement, so one heavy query cannot pin a connection; a timed-out statement
    // surfaces as SQLSTATE 57014 and is answered 503.
    statement_timeout: opts.statementTimeoutMs ?? 10_000,
    // Without it a request waits forever for a connection when PostgreSQL is down.
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    // JIT compiles plans for a few hundred ms on the wide aggregates and never pays back on
    // queries that answer in milliseconds (../shared/research/perf-limits.md §4).
    options: '-c jit=off'
  })
  // pg-pool listens for a lost connection only while the client is idle in the pool. One lost
  // while checked out between two statements (a transaction's, a purge's) emits 'error' on the
  // client with nobody listening, which would crash the process: the statement that next uses it
  // fails instead, and the driver discards the connection.
  pool.on('connect', (client) => { client.on('error', () => {}) })
  return pool
}

/**
 * Kysely over the pool. With `prepared`, a statement marked `prepared(label)` (db/plan.ts) runs as a
 * named prepared statement, so each connection parses and plans it once and then only binds and
 * executes it (../shared/research/perf-limits.md §9: +15 % requests/s for the same SELECT; the list query's
 * 1 ms of planning is the larger saving). Without it, or unmarked, a statement is planned per call.
 */
export function createDb (pool: pg.Pool, opts: { prepared?: boolean } = {}): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PlannedPostgresDialect(pool, { prepare: opts.prepared === true }) })
}
