import { sql, type Kysely, type RawBuilder } from 'kysely'
import type { Database } from '../db/types.js'

type RollupTable = 'logs_stat_minutely' | 'logs_stat_hourly' | 'logs_stat_hourly_user' | 'logs_stat_daily_user'

// Each rollup: its key columns, the grouping of the folded deltas (per user and minute) it takes,
// and the order its new rows are written in: time first, so that a unit's rows share pages (a
// purge drops them unit by unit, and a month loaded at once is laid out as a live service's).
const ROLLUPS: Array<{ table: RollupTable, keys: string, groupBy: string, orderBy: string, unit: string, seconds: number }> = [
  { table: 'logs_stat_minutely', keys: 'minute, type', groupBy: 'minute, type', orderBy: '1, 2', unit: 'minute', seconds: 60 },
  { table: 'logs_stat_hourly', keys: 'hour, type', groupBy: 'minute / 60, type', orderBy: '1, 2', unit: 'hour', seconds: 3600 },
  { table: 'logs_stat_hourly_user', keys: 'user_id, hour, type', groupBy: 'user_id, minute / 60, type', orderBy: '2, 1, 3', unit: 'hour', seconds: 3600 },
  { table: 'logs_stat_daily_user', keys: 'user_id, day, type', groupBy: 'user_id, minute / 1440, type', orderBy: '2, 1, 3', unit: 'day', seconds: 86_400 }
]

const SUMS = 'sum(n), sum(quota), sum(prompt_tokens), sum(completion_tokens)'

/** Delta rows one fold moves at most: a short transaction even after a purge of millions of rows. */
export const FOLD_CHUNK = 20_000

/** Taken by every writer of the rollups (the fold, a purge batch), so that they never deadlock. */
export const ROLLUP_WRITE_LOCK_NAME = 'log-service:stat-fold'
export const rollupWriteLock = sql`hashtextextended(${sql.lit(ROLLUP_WRITE_LOCK_NAME)}, 0)`

function upsert (r: typeof ROLLUPS[number]): string {
  return `
    ${r.table}_in as (
      insert into ${r.table} as r (${r.keys}, n, quota, prompt_tokens, completion_tokens)
      select ${r.groupBy}, ${SUMS} from moved group by ${r.groupBy} order by ${r.orderBy}
      on conflict (${r.keys}) do update set
        n = r.n + excluded.n, quota = r.quota + excluded.quota,
        prompt_tokens = r.prompt_tokens + excluded.prompt_tokens, completion_tokens = r.completion_tokens + excluded.completion_tokens
      returning r.*
    )`
}

/**
 * The CTEs that add the sums of a CTE named `moved` (user_id, minute, type, n, quota,
 * prompt_tokens, completion_tokens) to every rollup; each returns the rows it wrote.
 */
export function rollupUpsertsText (): string {
  return ROLLUPS.map(upsert).join(',')
}

export function rollupUpserts (): RawBuilder<unknown> {
  return sql.raw(rollupUpsertsText())
}

/** Deletes the rollup rows at zero in the units that hold [from, to] (where a purge went). */
export async function pruneEmptyRollups (db: Kysely<Database>, from: number, to: number): Promise<void> {
  for (const r of ROLLUPS) {
    const unit = sql.ref(r.unit)
    await sql`delete from ${sql.table(r.table)}
      where n = 0 and ${unit} >= ${Math.floor(from / r.seconds)} and ${unit} <= ${Math.floor(to / r.seconds)}`.execute(db)
  }
}

/**
 * Folds up to `limit` of the deltas the triggers appended into the rollups, in one statement (a
 * reader sees those deltas either before or after the fold, never both). Returns the delta rows
 * folded. Only this
 * function updates rollup rows, so writers never wait on each other here.
 */
export async function foldStatDeltas (db: Kysely<Database>, limit = FOLD_CHUNK): Promise<number> {
  return await db.transaction().execute(async (trx) => {
    const { rows: [lock] } = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${rollupWriteLock}) as ok`.execute(trx)
    if (lock?.ok !== true) return 0
    const emptiedColumns = ROLLUPS.map((r) => sql.raw(`(select coalesce(json_agg(${r.table}_in), '[]')::text from ${r.table}_in where n = 0) as ${r.table}`))
    const { rows: [result] } = await sql<Record<RollupTable, string> & { n: number }>`
      with moved as (
        delete from logs_stat_delta where ctid = any(array(select ctid from logs_stat_delta limit ${limit})) returning *
      ),
      ${rollupUpserts()}
      select (select count(*) from moved)::int8 as n, ${sql.join(emptiedColumns)}`.execute(trx)
    if (result === undefined) return 0
    // Units emptied by a purge would otherwise stay behind as rows of zeros.
    for (const r of ROLLUPS) {
      if (result[r.table] === '[]') continue
      await sql`
        delete from ${sql.table(r.table)} r using json_populate_recordset(null::${sql.table(r.table)}, ${result[r.table]}::json) e
        where (${sql.raw(r.keys.split(', ').map((k) => `r.${k}`).join(', '))}) = (${sql.raw(r.keys.split(', ').map((k) => `e.${k}`).join(', '))}) and r.n = 0`.execute(trx)
    }
    return result.n
  })
}

/** VACUUM (outside any transaction) of the stat tables named; skips a table someone else holds. */
export async function vacuumStatTables (db: Kysely<Database>, tables: Array<RollupTable | 'logs_stat_delta'>): Promise<void> {
  await sql`vacuum (skip_locked) ${sql.join(tables.map((t) => sql.table(t)))}`.execute(db)
}

export const ROLLUP_TABLES = ROLLUPS.map((r) => r.table)
