import { setTimeout as sleep } from 'node:timers/promises'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/types.js'
import { DELTA_TABLE, ROLLUPS } from './rollups/model.js'

/** Every table of stat sums: the rollups and the deltas. */
export const STAT_TABLES = [...ROLLUPS.map((r) => r.table), DELTA_TABLE]

/**
 * VACUUM (outside any transaction) of the stat tables named; skips a table someone else holds.
 * No parallel workers: a manual VACUUM starts one for the index cleanup of every table (or
 * partition) with two big enough indexes, even when it has nothing to clean, and the partitioned
 * per-user rollup has a partition a period. At 10M rows that was 50–60 ms a clean day, 1.3 s of a
 * 1.5 s vacuum after a purge (bench/RESULTS.md, run S).
 */
export async function vacuumStatTables (db: Kysely<Database>, tables: readonly string[]): Promise<void> {
  await sql`vacuum (skip_locked, parallel 0) ${sql.join(tables.map((t) => sql.table(t)))}`.execute(db)
}

/** A VACUUM of `logs` under way, and how to stop it. */
export interface BackgroundVacuum {
  done: Promise<void>
  cancel: () => Promise<void>
}

/**
 * VACUUM of `logs` after a purge, throttled as autovacuum throttles itself (the manual default is
 * not to), on a connection of its own. Until it has run, the purged rows' dead index entries stay:
 * a query whose plan asks an index for its actual minimum (a window reaching below the oldest
 * row) walks all of them, and autovacuum may be slow to come, or off.
 */
export function vacuumLogsInBackground (db: Kysely<Database>): BackgroundVacuum {
  let pid: number | null = null
  let cancelled = false
  const done = db.connection().execute(async (conn) => {
    const { rows: [me] } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(conn)
    pid = me?.pid ?? null
    try {
      await sql`set statement_timeout = 0`.execute(conn)
      await sql`set vacuum_cost_delay = '2ms'`.execute(conn)
      if (!cancelled) await sql`vacuum (skip_locked) logs`.execute(conn)
    } finally {
      await sql`reset vacuum_cost_delay`.execute(conn)
      await sql`reset statement_timeout`.execute(conn)
    }
  })
  const ended = done.then(() => true, () => true)
  // A cancel that reaches the backend between two statements does nothing: cancel until it ends.
  const cancel = async (): Promise<void> => {
    cancelled = true
    for (let over = false; !over;) {
      if (pid !== null) await sql`select pg_cancel_backend(${pid})`.execute(db)
      over = await Promise.race([ended, sleep(50).then(() => false)])
    }
  }
  return { done, cancel }
}
