import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/types.js'
import { pruneEmptyRollups, rollupUpserts, rollupWriteLock } from './rollup.js'

// One purge at a time across every service process: a session-level advisory lock, held by the
// connection that runs the batches, so it goes away with that connection if the process dies.
const lockKey = sql`hashtextextended('log-service:history-purge', 0)`

export interface PurgeOptions {
  /** rows with created_at strictly below this are deleted */
  before: number
  batchSize: number
  onBatch?: (deleted: number, total: number) => void
}

/**
 * Deletes in batches of `batchSize` rows, each its own short transaction (autocommit), so row
 * locks are held for milliseconds and readers and writers keep flowing. Rows are picked through
 * the (created_at, id) index from where the previous batch ended (so no batch re-reads the index
 * entries of rows already deleted, which stay until a vacuum) and deleted by ctid, a TID scan
 * with no join back through the primary key (research/perf-limits.md §7: ctid 730-850k rows/s,
 * id-IN 250-310k). A second pass from the start picks up rows a batch skipped (updated while it
 * ran) or written behind it with an old timestamp.
 * Returns the number of rows deleted, or null when another purge holds the lock.
 */
export async function purgeLogsBefore (db: Kysely<Database>, opts: PurgeOptions): Promise<number | null> {
  return await db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${lockKey}) as locked`.execute(conn)
    if (rows[0]?.locked !== true) return null
    try {
      // Each batch is bounded; the sweep's first batch may walk many dead index entries. The stat
      // triggers would turn every deleted row into a delta for the fold (a 3M-row purge: 3M
      // deltas, and readers slowed until they are folded): each batch adjusts the rollups itself.
      await sql`set statement_timeout = 0`.execute(conn)
      await sql`set log_service.stat_capture = off`.execute(conn)
      let total = 0
      for (let pass = 0; pass < 2; pass++) {
        let from: number | null = null
        for (;;) {
          const batch = await conn.transaction().execute(async (trx) => {
            await sql`select pg_advisory_xact_lock(${rollupWriteLock})`.execute(trx)
            const { rows: [result] } = await sql<{ n: number, last: number | null }>`
              with victims as materialized (
                select ctid from logs
                where created_at >= coalesce(${from}::int8, '-9223372036854775808'::int8) and created_at < ${opts.before}
                order by created_at limit ${opts.batchSize}
              ), gone as (
                delete from logs where ctid = any(array(select ctid from victims))
                returning user_id, created_at, type, quota, prompt_tokens, completion_tokens
              ), moved as (
                select user_id, created_at / 60 as minute, type, -1::int8 as n, -quota as quota,
                  -prompt_tokens::int8 as prompt_tokens, -completion_tokens::int8 as completion_tokens
                from gone
              ),
              ${rollupUpserts()}
              select (select count(*) from gone)::int8 as n, (select max(created_at) from gone) as last`.execute(trx)
            return result
          })
          const deleted = batch?.n ?? 0
          if (deleted === 0) break
          total += deleted
          from = batch?.last ?? from
          opts.onBatch?.(deleted, total)
        }
      }
      if (total > 0) await pruneEmptyRollups(conn)
      return total
    } finally {
      await sql`reset log_service.stat_capture`.execute(conn)
      await sql`reset statement_timeout`.execute(conn)
      await sql`select pg_advisory_unlock(${lockKey})`.execute(conn)
    }
  })
}
