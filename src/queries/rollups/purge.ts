import { sql, type Kysely, type RawBuilder } from 'kysely'
import type { Database } from '../../db/types.js'
import { rollupUpserts } from './fold.js'
import { DELTA_SECONDS, DELTA_TABLE, grainsOf, HOUR, keyColumns, rollupAt, ROLLUPS, SUM_COLUMNS, type Rollup } from './model.js'

// The statements a history purge runs, with the rollups kept exact in each: whole units (a UTC day
// or hour) and their rollup rows in one statement, and row batches that subtract their own sums.
// Batching, locking and the choice between them are queries/purge.ts's. Raw sql: the tables and
// unit columns come from the model at run time, in data-modifying CTEs the builder cannot type.

const gone = (r: Rollup) => sql.ref(`${r.table}_gone`)

/** The coarsest grain of the rollup's scope that whole units of `seconds` are made of, if any. */
function wholeGrain (r: Rollup, seconds: number): Rollup | undefined {
  return grainsOf(r.scope).filter((g) => g.seconds <= seconds && seconds % g.seconds === 0).at(-1)
}

/** Whether every rollup can drop or adjust its rows for a whole unit of `seconds`. */
export function purgeableWhole (seconds: number): boolean {
  return seconds % DELTA_SECONDS === 0 && ROLLUPS.every((r) => wholeGrain(r, seconds) !== undefined)
}

/**
 * A rollup's part of a whole unit [start, end): its rows inside the unit go; a grain coarser than
 * the unit loses what the rows of its scope's `wholeGrain` inside the unit held.
 */
function rollupPart (r: Rollup, start: number, end: number): RawBuilder<unknown> {
  const unit = sql.ref(r.unit)
  if (r.seconds <= end - start) {
    const needed = ROLLUPS.some((c) => c.seconds > end - start && wholeGrain(c, end - start) === r)
    return sql`${gone(r)} as (delete from ${sql.table(r.table)} where ${unit} >= ${start / r.seconds} and ${unit} < ${end / r.seconds}${needed ? sql` returning *` : sql``})`
  }
  const from = wholeGrain(r, end - start)!
  const keys = keyColumns(r)
  const groupKeys = sql.join(keys.map((k) => k === r.unit ? sql`${sql.ref(from.unit)} / ${sql.lit(r.seconds / from.seconds)} as ${sql.ref(k)}` : sql.ref(k)))
  const sums = sql.join(SUM_COLUMNS.map((c) => sql`sum(${sql.ref(c)}) as ${sql.ref(c)}`))
  const less = sql.join(SUM_COLUMNS.map((c) => sql`${sql.ref(c)} = d.${sql.ref(c)} - u.${sql.ref(c)}`))
  const matches = sql.join(keys.map((k) => sql`d.${sql.ref(k)} = u.${sql.ref(k)}`), sql` and `)
  return sql`${gone(r)} as (update ${sql.table(r.table)} d set ${less}
    from (select ${groupKeys}, ${sums} from ${gone(from)} group by ${sql.join(keys.map((_, i) => sql.lit(i + 1)))}) u
    where ${matches})`
}

/**
 * Every row of the unit [start, end) in `table` (logs, or the one partition of logs holding the
 * unit), and the unit's rows in every rollup and in the pending deltas, in one statement: run in a
 * repeatable-read transaction, all of it is one snapshot, in which a unit's rollup rows plus its
 * deltas equalled its rows, which is how many it reports deleted (the DELETE returns none:
 * counting its RETURNING rows was a seventh of a day's statement, bench/RESULTS.md run T).
 */
export function deleteUnitStatement (start: number, end: number, table = 'logs'): RawBuilder<{ n: string }> {
  return unitStatement(start, end,
    sql`gone as (delete from ${sql.table(table)} where created_at >= ${start} and created_at < ${end}), ${countedRows(start, end)}`,
    sql`select n from counted`)
}

/**
 * The same for a partition holding exactly the unit [start, end), which is then detached in the
 * same transaction (which keeps writers out of it from before the snapshot). Its rows are not
 * read: a count(*) scanned the whole partition, a day's heap, for a number the rollups already held.
 */
export function dropPartitionStatement (start: number, end: number, detached: readonly string[] = []): RawBuilder<{ n: string }> {
  return unitStatement(start, end, countedRows(start, end), sql`select n from counted`, detached)
}

/**
 * The rows of [start, end) in the statement's snapshot, as the site's rollup and the pending deltas
 * count them; read before the statement's parts delete them (they all share one snapshot).
 */
function countedRows (start: number, end: number): RawBuilder<unknown> {
  return sql`counted as (select ${siteRowsIn(start, end)}
      + (select coalesce(sum(n), 0) from ${sql.table(DELTA_TABLE)} where minute >= ${start / DELTA_SECONDS} and minute < ${end / DELTA_SECONDS}) as n)`
}

/** `detached`: rollups whose rows of the unit are a partition the caller detaches in the same transaction. */
function unitStatement (start: number, end: number, rows: RawBuilder<unknown>, count: RawBuilder<unknown>, detached: readonly string[] = []): RawBuilder<{ n: string }> {
  const [m0, m1] = [start / DELTA_SECONDS, end / DELTA_SECONDS]
  // A detached rollup's rows cannot be read back: no coarser grain may need them.
  if (ROLLUPS.some((c) => c.seconds > end - start && detached.includes(wholeGrain(c, end - start)?.table ?? ''))) {
    throw new Error(`a rollup coarser than [${start}, ${end}) is adjusted from one of ${detached.join(', ')}`)
  }
  return sql<{ n: string }>`
    with ${rows}, deltas as (
      delete from ${sql.table(DELTA_TABLE)} where minute >= ${m0} and minute < ${m1}
    ), ${sql.join(ROLLUPS.filter((r) => !detached.includes(r.table)).map((r) => rollupPart(r, start, end)))}
    ${count}`
}

/**
 * Up to `batchSize` rows in [first, end) of `table` (as for deleteUnitStatement), picked through
 * the (created_at, id) index and deleted by ctid (a TID scan, no join back through the primary key:
 * ../shared/research/perf-limits.md §7), their sums subtracted from every rollup in the same
 * statement. Returns the rows deleted and the newest.
 */
export function deleteRowsStatement (first: number, end: number, batchSize: number, table = 'logs'): RawBuilder<{ n: string, last: string | null }> {
  return sql<{ n: string, last: string | null }>`
    with victims as materialized (
      select ctid from ${sql.table(table)} where created_at >= ${first} and created_at < ${end}
      order by created_at limit ${batchSize}
    ), gone as (
      -- A ctid is unique within one table only: where logs is partitioned and the statement names
      -- it, the range keeps the delete to the one partition that holds [first, end).
      delete from ${sql.table(table)} where ctid = any(array(select ctid from victims))
        and created_at >= ${first} and created_at < ${end}
      returning user_id, created_at, type, quota, prompt_tokens, completion_tokens
    ), moved as (
      select user_id, created_at / ${sql.lit(DELTA_SECONDS)} as minute, type, -1::int8 as n, -quota as quota,
        -prompt_tokens::int8 as prompt_tokens, -completion_tokens::int8 as completion_tokens
      from gone
    ),
    ${rollupUpserts()}
    select (select count(*) from gone) as n, (select max(created_at) from gone) as last`
}

/** Deletes the rollup rows at zero in the units that hold [from, to] (where row batches went). */
export async function pruneEmptyRollups (db: Kysely<Database>, from: number, to: number): Promise<void> {
  for (const r of ROLLUPS) {
    const unit = sql.ref(r.unit)
    await sql`delete from ${sql.table(r.table)}
      where n = 0 and ${unit} >= ${Math.floor(from / r.seconds)} and ${unit} <= ${Math.floor(to / r.seconds)}`.execute(db)
  }
}

/**
 * The folded rows of [start, end) (both on the site's finest grain), from the coarsest site rollup
 * that fits: the size of a unit a purge may take whole. Pending deltas are not counted.
 */
export async function foldedRowsIn (db: Kysely<Database>, start: number, end: number): Promise<number> {
  const { rows: [row] } = await sql<{ n: string }>`select ${siteRowsIn(start, end)} as n`.execute(db)
  return Number(row?.n ?? 0)
}

/** The folded rows of each hour in [start, end) that holds any, by hour unit (created_at / 3600). */
export async function rowsPerHour (db: Kysely<Database>, start: number, end: number): Promise<Map<number, number>> {
  const r = rollupAt('site', HOUR)
  if (r === undefined) throw new Error('no hourly site rollup')
  const unit = sql.ref(r.unit)
  const { rows } = await sql<{ unit: string, n: string }>`select ${unit} as unit, sum(n) as n from ${sql.table(r.table)}
    where ${unit} >= ${start / HOUR} and ${unit} < ${end / HOUR} group by 1`.execute(db)
  return new Map(rows.map((row) => [Number(row.unit), Number(row.n)]))
}

/** foldedRowsIn's sum, as a scalar subquery. */
function siteRowsIn (start: number, end: number): RawBuilder<string> {
  const r = grainsOf('site').filter((g) => start % g.seconds === 0 && end % g.seconds === 0).at(-1)
  if (r === undefined) throw new Error(`no site rollup fits [${start}, ${end})`)
  const unit = sql.ref(r.unit)
  return sql<string>`(select coalesce(sum(n), 0) from ${sql.table(r.table)}
    where ${unit} >= ${start / r.seconds} and ${unit} < ${end / r.seconds})`
}
