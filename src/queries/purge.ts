import { setTimeout as sleep } from 'node:timers/promises'
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database } from '../db/types.js'
import { pruneEmptyRollups, ROLLUP_TABLES, rollupUpserts, rollupWriteLock, vacuumStatTables } from './rollup.js'

// One purge at a time across every service process: a session-level advisory lock, held by the
// connection that runs the batches, so it goes away with that connection if the process dies.
const lockKey = sql`hashtextextended('log-service:history-purge', 0)`

const HOUR = 3600
const DAY = 86_400

/** How often a whole-unit batch is retried after a serialization failure before giving up. */
const UNIT_RETRIES = 5

export interface PurgeOptions {
  /** rows with created_at strictly below this are deleted */
  before: number
  /** rows per batch where the purge goes row by row (the hour holding the target) */
  batchSize: number
  /** a whole UTC day or hour below the target with at most this many rows goes in one batch */
  unitMaxRows: number
  onBatch?: (deleted: number, total: number) => void
}

type Conn = Kysely<Database>

/**
 * Deletes the rows below `before`, oldest first, in batches that are each their own transaction,
 * so locks are held briefly and readers and writers keep flowing, and every batch leaves the
 * rollups exact (readers' totals stay right during a purge, and no backlog of deltas is left).
 *
 * Most of a purge is whole UTC days (or hours, when a day is too big for one batch): their rows
 * go in one statement, and so do their rollup rows, which is what makes a purge fast; rewriting
 * the per-user rollups row by row cost more than the delete itself (bench/RESULTS.md). Only the
 * hour holding the target goes row by row, in `batchSize` batches that subtract their rows from
 * the rollups. Returns the number of rows deleted, or null when another purge holds the lock.
 */
export async function purgeLogsBefore (db: Kysely<Database>, opts: PurgeOptions): Promise<number | null> {
  return await db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${lockKey}) as locked`.execute(conn)
    if (rows[0]?.locked !== true) return null
    try {
      // A batch is bounded by unitMaxRows, not by the service's statement timeout. The stat
      // triggers are off for this session: each batch adjusts the rollups itself.
      await sql`set statement_timeout = 0`.execute(conn)
      await sql`set log_service.stat_capture = off`.execute(conn)
      let total = 0
      // Row batches skip a row that was updated while they ran (its ctid moved on), and they and
      // whole hours within a day can leave rollup rows at zero: where each of these began.
      let rowsFrom: number | null = null
      let zerosFrom: number | null = null
      const run = async (start: number | null): Promise<void> => {
        let from = start
        for (;;) {
          const next = await nextBatch(conn, from, opts)
          if (next === null) return
          if (next.unit !== 'day') zerosFrom = Math.min(zerosFrom ?? next.first, next.first)
          if (next.unit === null) rowsFrom = Math.min(rowsFrom ?? next.first, next.first)
          const deleted = next.unit === null
            ? await deleteRows(conn, next.first, next.end, opts.batchSize)
            : await deleteUnit(conn, next.end, next.unit)
          from = deleted.last ?? (next.unit === null ? next.first : next.end)
          if (deleted.n === 0) continue
          total += deleted.n
          opts.onBatch?.(deleted.n, total)
        }
      }
      await run(null)
      // Whole units cannot skip a row (a concurrent change fails their snapshot and they run
      // again); a second pass over what went row by row picks up what those batches skipped.
      if (rowsFrom !== null) await run(rowsFrom)
      if (zerosFrom !== null) await pruneEmptyRollups(conn, zerosFrom, opts.before)
      // The rollups' dead rows and index entries are gone at once, not when (or if) autovacuum
      // comes: readers plan against them. `logs` itself is a long vacuum, left to autovacuum.
      if (total > 0) await vacuumStatTables(conn, [...ROLLUP_TABLES, 'logs_stat_delta'])
      return total
    } finally {
      await sql`reset log_service.stat_capture`.execute(conn)
      await sql`reset statement_timeout`.execute(conn)
      await sql`select pg_advisory_unlock(${lockKey})`.execute(conn)
    }
  })
}

interface NextBatch {
  /** the oldest row left at or after the previous batch */
  first: number
  /** the batch covers [unit start, end) for a whole unit, [first, end) row by row */
  end: number
  unit: 'day' | 'hour' | null
}

/** Where the next batch starts, and whether it can take a whole day or hour (sized from the rollups). */
async function nextBatch (conn: Conn, from: number | null, opts: PurgeOptions): Promise<NextBatch | null> {
  const { rows: [row] } = await sql<{ first: string | null }>`
    select min(created_at) as first from logs
    where created_at >= coalesce(${from}::int8, '-9223372036854775808'::int8) and created_at < ${opts.before}`.execute(conn)
  if (row?.first == null) return null
  const first = Number(row.first)
  const day = Math.floor(first / DAY)
  const hour = Math.floor(first / HOUR)
  const hourEnd = (hour + 1) * HOUR
  // Unit 0 and negative timestamps: integer division maps them onto one rollup unit, row by row.
  if (hour < 1 || opts.unitMaxRows === 0) return { first, end: Math.min(opts.before, hourEnd), unit: null }
  const { rows: [size] } = await sql<{ day_rows: string, hour_rows: string }>`
    select
      (select coalesce(sum(n), 0) from logs_stat_hourly where hour >= ${day * 24} and hour < ${day * 24 + 24}) as day_rows,
      (select coalesce(sum(n), 0) from logs_stat_hourly where hour = ${hour}) as hour_rows`.execute(conn)
  const dayEnd = (day + 1) * DAY
  if (day >= 1 && dayEnd <= opts.before && Number(size?.day_rows) <= opts.unitMaxRows) return { first, end: dayEnd, unit: 'day' }
  if (hourEnd <= opts.before && Number(size?.hour_rows) <= opts.unitMaxRows) return { first, end: hourEnd, unit: 'hour' }
  return { first, end: Math.min(opts.before, hourEnd), unit: null }
}

interface Deleted { n: number, last: number | null }

/**
 * Up to `batchSize` rows in [first, end), picked through the (created_at, id) index and deleted by
 * ctid (a TID scan, no join back through the primary key: research/perf-limits.md §7), their sums
 * subtracted from every rollup in the same statement.
 */
async function deleteRows (conn: Conn, first: number, end: number, batchSize: number): Promise<Deleted> {
  const result = await conn.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${rollupWriteLock})`.execute(trx)
    const { rows: [r] } = await sql<{ n: string, last: string | null }>`
      with victims as materialized (
        select ctid from logs where created_at >= ${first} and created_at < ${end}
        order by created_at limit ${batchSize}
      ), gone as (
        delete from logs where ctid = any(array(select ctid from victims))
        returning user_id, created_at, type, quota, prompt_tokens, completion_tokens
      ), moved as (
        select user_id, created_at / 60 as minute, type, -1::int8 as n, -quota as quota,
          -prompt_tokens::int8 as prompt_tokens, -completion_tokens::int8 as completion_tokens
        from gone
      ),
      ${rollupUpserts()}
      select (select count(*) from gone) as n, (select max(created_at) from gone) as last`.execute(trx)
    return r
  })
  return { n: Number(result?.n ?? 0), last: result?.last == null ? null : Number(result.last) }
}

/**
 * Every row of the day or hour ending at `end`, and the unit's rows in every rollup and in the
 * pending deltas, in one statement of a repeatable-read transaction, so all of it is one snapshot:
 * for the unit, rollup + deltas equalled the rows deleted, and a row written after the snapshot
 * stays together with its delta. Within a day that is not purged whole, the day's per-user rows
 * lose what the hour's per-user rows held (the hour's deltas go with the hour).
 */
async function deleteUnit (conn: Conn, end: number, unit: 'day' | 'hour'): Promise<Deleted> {
  const start = end - (unit === 'day' ? DAY : HOUR)
  const [m0, m1, h0, h1] = [start / 60, end / 60, start / HOUR, end / HOUR]
  const dailyUser = unit === 'day'
    ? sql`delete from logs_stat_daily_user where day = ${start / DAY}`
    : sql`update logs_stat_daily_user d set n = d.n - u.n, quota = d.quota - u.quota,
          prompt_tokens = d.prompt_tokens - u.prompt_tokens, completion_tokens = d.completion_tokens - u.completion_tokens
        from hourly_user u where d.user_id = u.user_id and d.day = u.hour / 24 and d.type = u.type`
  const statement = sql<{ n: string }>`
    with gone as (
      delete from logs where created_at >= ${start} and created_at < ${end} returning 1
    ), deltas as (
      delete from logs_stat_delta where minute >= ${m0} and minute < ${m1}
    ), minutely as (
      delete from logs_stat_minutely where minute >= ${m0} and minute < ${m1}
    ), hourly as (
      delete from logs_stat_hourly where hour >= ${h0} and hour < ${h1}
    ), hourly_user as (
      delete from logs_stat_hourly_user where hour >= ${h0} and hour < ${h1} returning *
    ), daily_user as (${dailyUser})
    select count(*) as n from gone`

  // The fold writes the same rows: its lock is taken before the snapshot, at the session level,
  // so that the snapshot sees everything the fold committed.
  for (let attempt = 1; ; attempt++) {
    await sql`select pg_advisory_lock(${rollupWriteLock})`.execute(conn)
    try {
      const { rows: [r] } = await conn.transaction().setIsolationLevel('repeatable read')
        .execute(async (trx: Transaction<Database>) => await statement.execute(trx))
      return { n: Number(r?.n ?? 0), last: null }
    } catch (err) {
      // A row of the unit updated or deleted by someone else since the snapshot: try again.
      if ((err as { code?: string }).code !== '40001' || attempt >= UNIT_RETRIES) throw err
    } finally {
      await sql`select pg_advisory_unlock(${rollupWriteLock})`.execute(conn)
    }
  }
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
