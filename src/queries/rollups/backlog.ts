import { sql, type Kysely } from 'kysely'
import type { Database } from '../../db/types.js'
import { DELTA_SECONDS, DELTA_TABLE } from './model.js'

export interface FoldBacklog {
  /** delta rows the fold has not moved into the rollups yet */
  rows: number
  /** unix seconds at the start of the oldest pending delta's minute; null when there is none */
  oldestAt: number | null
}

/**
 * What the stat fold still has to do, for the metrics. A delta row carries the minute of the log
 * rows it counts, not when it was written: the oldest one's age is how far behind the rollups are
 * for a live gateway (its rows are written as they happen), and an old-dated backfill shows its
 * rows' age until folded. min(minute) reads logs_stat_delta_minute; count(*) scans the small table.
 * Bounded by its own statement timeout: a scrape must not wait behind a slow fold.
 */
export async function foldBacklog (db: Kysely<Database>, timeoutMs: number): Promise<FoldBacklog> {
  return await db.transaction().execute(async (trx) => {
    await sql`set local statement_timeout = ${sql.lit(Math.max(1, Math.round(timeoutMs)))}`.execute(trx)
    const row = await trx.selectFrom(DELTA_TABLE)
      .select((eb) => [eb.fn.countAll<number>().as('rows'), eb.fn.min('minute').as('oldest')])
      .executeTakeFirstOrThrow()
    return { rows: Number(row.rows), oldestAt: row.oldest === null ? null : Number(row.oldest) * DELTA_SECONDS }
  })
}
