import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/types.js'

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
 * the (created_at, id) index and deleted by ctid, a TID scan with no join back through the
 * primary key (research/perf-limits.md §7: ctid 730-850k rows/s, id-IN 250-310k).
 * Returns the number of rows deleted, or null when another purge holds the lock.
 */
export async function purgeLogsBefore (db: Kysely<Database>, opts: PurgeOptions): Promise<number | null> {
  return await db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${lockKey}) as locked`.execute(conn)
    if (rows[0]?.locked !== true) return null
    try {
      let total = 0
      for (;;) {
        const result = await sql`
          delete from logs where ctid = any(array(
            select ctid from logs where created_at < ${opts.before} limit ${opts.batchSize}
          ))`.execute(conn)
        const deleted = Number(result.numAffectedRows ?? 0)
        total += deleted
        opts.onBatch?.(deleted, total)
        // Stop on an empty batch, not a short one: a row updated while its batch ran is skipped
        // by the ctid match and must still be picked up by the next batch.
        if (deleted === 0) return total
      }
    } finally {
      await sql`select pg_advisory_unlock(${lockKey})`.execute(conn)
    }
  })
}
