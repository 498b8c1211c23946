import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
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
  return new pg.Pool({
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
    // queries that answer in milliseconds (research/perf-limits.md §4).
    options: '-c jit=off'
  })
}

/**
 * Statements whose best plan depends on the values: a search pattern (a rare keyword wants the
 * trigram index, a common one a walk of the newest rows) and the optional list filters (type 3
 * over a day wants (type, created_at); a prepared statement's generic plan, chosen after five runs
 * from estimates alone, walked (created_at, id) instead: 300 ms instead of 0.3 ms at 10M rows).
 * They stay unnamed, so they are planned for their actual parameters every time.
 */
const VALUE_DEPENDENT_PLAN = / ilike |"logs"\."(type|model_name|token_name|group|request_id|username|channel_id)" = /

/**
 * Kysely over the pool. With `prepared`, every statement runs as a named prepared statement, so
 * each connection parses and analyses a query text once and then only binds and executes it
 * (research/perf-limits.md §9: +15 % requests/s for the same SELECT; here the list query's 1 ms
 * of planning is the larger saving). The service's SQL is all parameterised, so the number of
 * distinct texts is small and fixed by the code.
 */
export function createDb (pool: pg.Pool, opts: { prepared?: boolean } = {}): Kysely<Database> {
  if (opts.prepared !== true) return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  const names = new Map<string, string | undefined>()
  const nameOf = (text: string) => {
    if (names.has(text)) return names.get(text)
    // Sums over the rollups read small tables by key whatever the values: those keep their plan.
    const name = VALUE_DEPENDENT_PLAN.test(text) && !text.includes('"logs_stat_') ? undefined : `k${names.size}`
    names.set(text, name)
    return name
  }
  return new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: {
        connect: async () => {
          const client = await pool.connect()
          return {
            query: (text: string, values: readonly unknown[]) => client.query({ name: nameOf(text), text, values: [...values] }),
            release: (err?: Error | boolean) => { client.release(err) }
          } as never
        },
        end: async () => { await pool.end() }
      }
    })
  })
}
