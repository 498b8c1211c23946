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
 * Kysely over the pool. With `prepared`, every statement runs as a named prepared statement, so
 * each connection parses and analyses a query text once and then only binds and executes it
 * (research/perf-limits.md §9: +15 % requests/s for the same SELECT). The service's SQL is all
 * parameterised, so the number of distinct texts is small and fixed by the code.
 */
export function createDb (pool: pg.Pool, opts: { prepared?: boolean } = {}): Kysely<Database> {
  if (opts.prepared !== true) return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  const names = new Map<string, string | undefined>()
  const nameOf = (text: string) => {
    if (names.has(text)) return names.get(text)
    // A search's plan depends on its pattern (a rare keyword wants the trigram index, a common one
    // a walk of the newest rows), and a prepared statement settles on one generic plan after five
    // runs: those statements stay unnamed, planned for each pattern.
    const name = / ilike /.test(text) ? undefined : `k${names.size}`
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
