import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql, type RawBuilder } from 'kysely'
import { plannedPerCall } from '../../db/plan.js'
import type { Database } from '../../db/types.js'
import { DELTA_TABLE, keyColumns, ROLLUPS, SUM_COLUMNS, unitOfMinute, type Rollup, type RollupTable } from './model.js'

// Writing sums into the rollups: the fold of the triggers' deltas, and (with the same upserts) the
// purge's subtraction of the rows it deletes and the seed's sums of the rows it loads. Raw sql: the
// tables and unit columns come from the model at run time, in data-modifying CTEs the builder cannot type.

/** Delta rows one fold moves at most: a short transaction even after a purge of millions of rows. */
export const FOLD_CHUNK = 20_000

/** Taken by every writer of the rollups (the fold, a purge batch, the seed), so that they never deadlock. */
export const ROLLUP_WRITE_LOCK_NAME = 'log-service:stat-fold'
export const rollupWriteLock = sql`hashtextextended(${sql.lit(ROLLUP_WRITE_LOCK_NAME)}, 0)`

const ids = (names: readonly string[], prefix = '') => sql.join(names.map((n) => sql.ref(prefix + n)))

/**
 * Adds the sums of a CTE named `moved` (user_id, minute, type and the sum columns) to one rollup,
 * as a CTE named `<table>_in` returning the rows it wrote. New rows are written time first, so a
 * unit's rows share pages (a purge drops them unit by unit, and a month loaded at once is laid out
 * as a live service's).
 */
function upsertInto (r: Rollup): RawBuilder<unknown> {
  const keys = keyColumns(r)
  const unit = unitOfMinute(r, sql.ref('minute'))
  const groupBy = r.scope === 'user' ? sql`user_id, ${unit}, type` : sql`${unit}, type`
  const timeFirst = r.scope === 'user' ? sql`2, 1, 3` : sql`1, 2`
  const added = sql.join(SUM_COLUMNS.map((c) => sql`${sql.ref(c)} = r.${sql.ref(c)} + excluded.${sql.ref(c)}`))
  return sql`${sql.ref(`${r.table}_in`)} as (
      insert into ${sql.table(r.table)} as r (${ids(keys)}, ${ids(SUM_COLUMNS)})
      select ${groupBy}, ${sql.join(SUM_COLUMNS.map((c) => sql`sum(${sql.ref(c)})`))} from moved group by ${groupBy} order by ${timeFirst}
      on conflict (${ids(keys)}) do update set ${added}
      returning r.*
    )`
}

/** The CTEs that add the sums of a CTE named `moved` to every rollup (after `with moved as (…),`). */
export function rollupUpserts (): RawBuilder<unknown> {
  return sql.join(ROLLUPS.map(upsertInto))
}

// Compiles SQL without a connection, for writers on a plain pg client (the seed's COPY session).
const compileOnly = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler()
  }
})

/** rollupUpserts() as SQL text; it has no parameters. */
export function rollupUpsertsText (): string {
  return rollupUpserts().compile(compileOnly).sql
}

/**
 * Folds up to `limit` of the deltas the triggers appended into the rollups, in one statement (a
 * reader sees those deltas either before or after the fold, never both). Returns the delta rows
 * folded. Under the rollup write lock: a purge batch writes the same rows.
 */
export async function foldStatDeltas (db: Kysely<Database>, limit = FOLD_CHUNK): Promise<number> {
  // Planned per call: logs_stat_delta swings from empty to hundreds of thousands of rows, and a
  // plan kept from the empty table (a sequential scan testing ctid = ANY of `limit` ctids) made
  // every fold time out until the next ANALYZE (test/plans/fold-after-idle.test.ts).
  return await db.withPlugin(plannedPerCall).transaction().execute(async (trx) => {
    const { rows: [lock] } = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(${rollupWriteLock}) as ok`.execute(trx)
    if (lock?.ok !== true) return 0
    const emptied = ROLLUPS.map((r) => sql`(select coalesce(json_agg(${sql.ref(`${r.table}_in`)}), '[]')::text from ${sql.ref(`${r.table}_in`)} where n = 0) as ${sql.ref(r.table)}`)
    const { rows: [result] } = await sql<Record<RollupTable, string> & { n: number }>`
      with moved as (
        delete from ${sql.table(DELTA_TABLE)} where ctid = any(array(select ctid from ${sql.table(DELTA_TABLE)} limit ${limit})) returning *
      ),
      ${rollupUpserts()}
      select (select count(*) from moved)::int8 as n, ${sql.join(emptied)}`.execute(trx)
    if (result === undefined) return 0
    for (const r of ROLLUPS) await dropZeroRows(trx, r, result[r.table])
    return result.n
  })
}

/** Units a purge emptied would otherwise stay behind as rows of zeros. */
async function dropZeroRows (trx: Kysely<Database>, r: Rollup, rowsJson: string): Promise<void> {
  if (rowsJson === '[]') return
  const keys = keyColumns(r)
  await sql`
    delete from ${sql.table(r.table)} r using json_populate_recordset(null::${sql.table(r.table)}, ${rowsJson}::json) e
    where (${ids(keys, 'r.')}) = (${ids(keys, 'e.')}) and r.n = 0`.execute(trx)
}
