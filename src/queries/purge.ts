import { sql, type Kysely, type Transaction } from 'kysely'
import { plannedPerCall } from '../db/plan.js'
import type { Database } from '../db/types.js'
import { rollupWriteLock } from './rollups/fold.js'
import { DAY, FIRST_UNIT, HOUR } from './rollups/model.js'
import { deleteRowsStatement, deleteUnitStatement, dropPartitionStatement, foldedRowsIn, pruneEmptyRollups, purgeableWhole, rowsPerHour } from './rollups/purge.js'
import { PARTITIONED_ROLLUP, readLayout, rollupPartitionName, type LogsLayout, type Partition } from './partitions.js'
import { STAT_TABLES, vacuumStatTables } from './vacuum.js'

// A history purge: batching and locking. What each batch deletes, and how it keeps the rollups
// exact, is rollups/purge.ts's.

// One purge at a time across every service process: a session-level advisory lock, held by the
// connection that runs the batches, so it goes away with that connection if the process dies.
const lockKey = sql`hashtextextended('log-service:history-purge', 0)`

/** How often a whole-unit batch is retried after a serialization failure before giving up. */
const UNIT_RETRIES = 5

/**
 * How long dropping a partition waits for its lock on logs (ACCESS EXCLUSIVE, held for
 * milliseconds) before it gives up and tries again: under PostgreSQL's deadlock_timeout (1 s), so
 * that in a lock cycle with a writer it is the purge that steps back, never the writer.
 */
const DETACH_LOCK_TIMEOUT = '500ms'
const DETACH_ATTEMPTS = 3

/** What a partition is renamed to in the transaction that detaches it, until it is dropped. */
export const PURGED_PREFIX = 'purged_'

/** Whole days go in one statement each (when the rollups allow it, as they do). */
const WHOLE_DAYS = purgeableWhole(DAY)

export interface PurgeOptions {
  /** rows with created_at strictly below this are deleted */
  before: number
  /** rows per batch where the purge goes row by row (the hour holding the target) */
  batchSize: number
  /** a whole UTC day or hour below the target with at most this many rows goes in one batch */
  unitMaxRows: number
  onBatch?: (deleted: number, total: number) => void
  /** checked between batches: once aborted, the purge stops at the next batch boundary */
  signal?: AbortSignal
  /**
   * Takes the DROPs of the partitions the purge detached, which start once its rows are gone: the
   * purge then answers without waiting for them, as it does not wait for the VACUUM that gives
   * the plain table's space back. Unset, the purge waits for them (and fails if one does).
   */
  reclaim?: (drops: Promise<void>) => void
}

/**
 * A purge stopped at a batch boundary (shutdown, Ctrl-C): every batch before it is committed and
 * the rollups are exact, so running the same purge again finishes it.
 */
export class PurgeStoppedError extends Error {
  constructor (readonly deleted: number) {
    super(`the purge stopped at a batch boundary after deleting ${deleted} rows; run it again to finish`)
  }
}

type Conn = Kysely<Database>

interface Batch {
  /** the oldest row left at or after the previous batch */
  first: number
  /** the batch covers [end - unit, end) for a whole unit, [first, end) row by row */
  end: number
  /** seconds of the whole unit, or null row by row */
  unit: number | null
}

interface Deleted { n: number, last: number | null }

/**
 * Deletes the rows below `before`, oldest first, in batches that are each their own transaction,
 * so locks are held briefly and readers and writers keep flowing, and every batch leaves the
 * rollups exact (readers' totals stay right during a purge, and no backlog of deltas is left).
 *
 * Most of a purge is whole UTC days (or runs of whole hours: in the day holding the target, or
 * when a day is too big for one batch): their rows go in one statement, and so do their rollup
 * rows, which is what makes a purge fast; rewriting the per-user rollups row by row cost more than
 * the delete itself (bench/RESULTS.md). Only the hour holding the target goes row by row, in
 * `batchSize` batches that subtract their rows from the rollups. Returns the number of rows
 * deleted, or null when another purge holds the lock.
 */
export async function purgeLogsBefore (db: Kysely<Database>, opts: PurgeOptions): Promise<number | null> {
  const drops = new DropQueue(db)
  let total: number | null
  try {
    // Planned per call: the table shrinks by millions of rows as the purge goes.
    total = await db.withPlugin(plannedPerCall).connection().execute(async (conn) => {
      const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${lockKey}) as locked`.execute(conn)
      if (rows[0]?.locked !== true) return null
      try {
        // A batch is bounded by unitMaxRows, not by the service's statement timeout. The stat
        // triggers are off for this session: each batch adjusts the rollups itself.
        await sql`set statement_timeout = 0`.execute(conn)
        await sql`set log_service.stat_capture = off`.execute(conn)
        return await runBatches(conn, drops, opts)
      } finally {
        await sql`reset log_service.stat_capture`.execute(conn)
        await sql`reset statement_timeout`.execute(conn)
        await sql`select pg_advisory_unlock(${lockKey})`.execute(conn)
      }
    })
  } catch (err) {
    // What was detached before the failure is dropped all the same.
    await reclaim().catch(() => {})
    throw err
  }
  await reclaim()
  return total

  async function reclaim (): Promise<void> {
    const dropped = drops.run()
    if (opts.reclaim === undefined) await dropped
    else opts.reclaim(dropped)
  }
}

async function runBatches (conn: Conn, drops: DropQueue, opts: PurgeOptions): Promise<number> {
  const layout = await readLayout(conn)
  let total = 0
  let stopped = false
  // Row batches skip a row that was updated while they ran (its ctid moved on), and they and
  // whole hours within a day can leave rollup rows at zero: where each of these began.
  let rowsFrom: number | null = null
  let zerosFrom: number | null = null
  const pass = async (start: number | null): Promise<void> => {
    for (let from = start; ;) {
      if (opts.signal?.aborted === true) {
        stopped = true
        return
      }
      const batch = await nextBatch(conn, from, opts)
      if (batch === null) return
      if (batch.unit !== DAY) zerosFrom = Math.min(zerosFrom ?? batch.first, batch.first)
      if (batch.unit === null) rowsFrom = Math.min(rowsFrom ?? batch.first, batch.first)
      const start = batch.unit === null ? batch.first : batch.end - batch.unit
      const table = holderOf(layout.partitions, start, batch.end)
      const deleted = batch.unit === null
        ? await deleteRows(conn, table, batch.first, batch.end, opts.batchSize)
        : await deleteUnit(conn, table, start, batch.end)
      from = deleted.last ?? (batch.unit === null ? batch.first : batch.end)
      if (deleted.n === 0) continue
      total += deleted.n
      opts.onBatch?.(deleted.n, total)
    }
  }
  // On the partitioned layout, whole partitions below the target first: each is one statement on
  // the rollups and a DROP, whatever its size. Empty ones are only tidying: they wait until the
  // rows are gone, so that a lock on logs that holds off their detach delays no deletion.
  await dropPurgedLeftovers(conn)
  const droppable = await droppablePartitions(conn, layout, opts.before)
  for (const partition of droppable.filter((p) => p.rows)) {
    if (opts.signal?.aborted === true) {
      stopped = true
      break
    }
    const n = await dropPartition(conn, drops, partition)
    // A long transaction on logs holds off every detach alike: the row batches take over.
    if (n === null) break
    if (n === 0) continue
    total += n
    opts.onBatch?.(n, total)
  }
  if (!stopped) await pass(null)
  // Whole units cannot skip a row (a concurrent change fails their snapshot and they run again);
  // a second pass over what went row by row picks up what those batches skipped.
  if (rowsFrom !== null && !stopped) await pass(rowsFrom)
  if (!stopped) {
    for (const partition of droppable.filter((p) => !p.rows)) {
      if (opts.signal?.aborted === true || await dropPartition(conn, drops, partition) === null) break
    }
  }
  // A stopped purge cleans up too: a re-run starts past the units this one emptied. One that ran
  // to the end left no rows below the target, so it prunes all the way down: a purge that died
  // (its connection or process lost) emptied units there and never got to prune them, and its
  // re-run starts past them too. The unit indexes keep that a range scan over the few rows left.
  if (!stopped) await pruneEmptyRollups(conn, Number.MIN_SAFE_INTEGER, opts.before)
  else if (zerosFrom !== null) await pruneEmptyRollups(conn, zerosFrom, opts.before)
  // The rollups' dead rows and index entries are gone at once, not when (or if) autovacuum comes:
  // readers plan against them. `logs` itself is a long vacuum, left to the maintenance plugin.
  if (total > 0) await vacuumStatTables(conn, STAT_TABLES)
  if (stopped) throw new PurgeStoppedError(total)
  return total
}

/**
 * Where the next batch starts, and the most it can take whole (sized from the rollups): the day,
 * or else as many of the day's whole hours as fit, in one statement. The day holding the target
 * (the boundary partition, on that layout) went an hour a statement: nine statements of 70–555 ms
 * at 10M rows where one does it (bench/RESULTS.md, runs R and S).
 */
async function nextBatch (conn: Conn, from: number | null, opts: PurgeOptions): Promise<Batch | null> {
  const { rows: [row] } = await sql<{ first: string | null }>`
    select min(created_at) as first from logs
    where created_at >= coalesce(${from}::int8, '-9223372036854775808'::int8) and created_at < ${opts.before}`.execute(conn)
  if (row?.first == null) return null
  const first = Number(row.first)
  const rowByRow = { first, end: Math.min(opts.before, (Math.floor(first / HOUR) + 1) * HOUR), unit: null }
  // Unit 0 and negative timestamps: integer division maps them onto one rollup unit.
  if (opts.unitMaxRows === 0 || Math.floor(first / DAY) < FIRST_UNIT) return rowByRow
  const dayEnd = (Math.floor(first / DAY) + 1) * DAY
  if (WHOLE_DAYS && dayEnd <= opts.before && await foldedRowsIn(conn, dayEnd - DAY, dayEnd) <= opts.unitMaxRows) {
    return { first, end: dayEnd, unit: DAY }
  }
  const start = Math.floor(first / HOUR) * HOUR
  const end = await wholeHoursEnd(conn, start, Math.min(dayEnd, Math.floor(opts.before / HOUR) * HOUR), opts.unitMaxRows)
  return end > start && purgeableWhole(end - start) ? { first, end, unit: end - start } : rowByRow
}

/**
 * The table a batch over [start, end) deletes from: the range partition of logs holding all of it,
 * else logs. Named directly, a partition spares the statement logs' own statement-level trigger,
 * whose transition table (every deleted row, written to a temporary file) this session does not
 * use: a quarter of the boundary day's statement at 10M rows (bench/RESULTS.md, run T). Never the
 * default partition: upkeep moves rows out of it into a new period's partition while a purge runs,
 * and the rollups' share of the batch is taken whatever table its rows are in. The range
 * partitions stay as they were read: only a purge detaches them, and one purge runs at a time.
 */
function holderOf (partitions: readonly Partition[], start: number, end: number): string {
  return partitions.find((p) => p.from <= start && end <= p.to)?.name ?? 'logs'
}

/**
 * The end of the longest run of whole hours from `start` (an hour) up to `limit` whose folded rows
 * number at most `maxRows`: `start` itself when not even one hour fits. Within one day, where every
 * rollup can take any run of hours whole (the daily one by subtracting the per-user hours').
 */
async function wholeHoursEnd (conn: Conn, start: number, limit: number, maxRows: number): Promise<number> {
  if (limit <= start) return start
  const hours = await rowsPerHour(conn, start, limit)
  let end = start
  let rows = 0
  for (let hour = start; hour < limit; hour += HOUR) {
    rows += hours.get(hour / HOUR) ?? 0
    if (rows > maxRows) break
    end = hour + HOUR
  }
  return end
}

async function deleteRows (conn: Conn, table: string, first: number, end: number, batchSize: number): Promise<Deleted> {
  const r = await conn.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${rollupWriteLock})`.execute(trx)
    const { rows: [r] } = await deleteRowsStatement(first, end, batchSize, table).execute(trx)
    return r
  })
  return { n: Number(r?.n ?? 0), last: r?.last == null ? null : Number(r.last) }
}

/**
 * The unit's statement in a repeatable-read transaction, so all of it is one snapshot: a row
 * written after the snapshot stays together with its delta.
 */
async function deleteUnit (conn: Conn, table: string, start: number, end: number): Promise<Deleted> {
  // The fold writes the same rows: its lock is taken before the snapshot, at the session level,
  // so that the snapshot sees everything the fold committed.
  for (let attempt = 1; ; attempt++) {
    await sql`select pg_advisory_lock(${rollupWriteLock})`.execute(conn)
    try {
      const { rows: [r] } = await conn.transaction().setIsolationLevel('repeatable read')
        .execute(async (trx: Transaction<Database>) => await deleteUnitStatement(start, end, table).execute(trx))
      return { n: Number(r?.n ?? 0), last: null }
    } catch (err) {
      // A row of the unit updated or deleted by someone else since the snapshot: try again.
      if ((err as { code?: string }).code !== '40001' || attempt >= UNIT_RETRIES) throw err
    } finally {
      await sql`select pg_advisory_unlock(${rollupWriteLock})`.execute(conn)
    }
  }
}

/**
 * Partitions detached by a purge whose DROP did not follow (the process or connection died between
 * the two): their rows are already out of logs and the rollups, so they only hold disk space.
 */
async function dropPurgedLeftovers (conn: Conn): Promise<void> {
  const { rows } = await sql<{ name: string }>`
    select relname as name from pg_class
     where relnamespace = current_schema()::regnamespace and relkind = 'r' and not relispartition
       and (starts_with(relname, ${PURGED_PREFIX + 'logs_p'}) or starts_with(relname, ${PURGED_PREFIX + rollupPartitionName('logs_p')}))`.execute(conn)
  for (const { name } of rows) await sql`drop table if exists ${sql.table(name)}`.execute(conn)
}

interface Droppable extends Partition {
  /** whether it holds any row */
  rows: boolean
  /** the rollup's partition of the same period, where it has one */
  rollup: string | null
}

/** The tables a droppable partition's transaction detaches: its own, and the rollup's of its period. */
function detachedBy (p: Droppable): Array<{ parent: string, name: string }> {
  return [{ parent: 'logs', name: p.name }, ...(p.rollup === null ? [] : [{ parent: PARTITIONED_ROLLUP, name: p.rollup }])]
}

/** Range partitions of logs wholly below `before`, oldest first (none on the plain layout). */
async function droppablePartitions (conn: Conn, layout: LogsLayout, before: number): Promise<Droppable[]> {
  // The current period's partition and those made ahead stay, whatever the target: writes keep
  // landing in them (rows of theirs below the target go by batches).
  const until = Math.min(before, Math.floor(Date.now() / 1000))
  const droppable = layout.partitions.filter((p) => p.to <= until && p.from >= DAY * FIRST_UNIT && purgeableWhole(p.to - p.from))
  if (droppable.length === 0) return []
  // One statement for all of them: a first retention run can find hundreds of days below its target.
  const { rows } = await sql<{ name: string, rows: boolean }>`${sql.join(droppable.map((p) =>
    sql`select ${p.name}::text as name, exists (select from ${sql.table(p.name)}) as rows`), sql` union all `)}`.execute(conn)
  const holding = new Set(rows.filter((r) => r.rows).map((r) => r.name))
  return droppable.map((p) => {
    const rollup = rollupPartitionName(p.name)
    return { ...p, rows: holding.has(p.name), rollup: layout.rollupPartitions?.has(rollup) === true ? rollup : null }
  })
}

/**
 * Drops a partition: its rows' share of every rollup and pending delta goes in the repeatable-read
 * transaction that detaches it, the DROP is queued. Writers are kept out of the partition from
 * before the snapshot (SHARE lock), so the rows counted are the rows dropped. Returns the rows
 * dropped, or null when the detach could not get its lock in a few tries (long readers): the row
 * batches that follow delete those rows instead.
 */
async function dropPartition (conn: Conn, drops: DropQueue, p: Droppable): Promise<number | null> {
  for (let attempt = 1; attempt <= DETACH_ATTEMPTS; attempt++) {
    const n = await detachPartition(conn, p)
    if (n !== null) {
      drops.add(detachedBy(p).map(({ name }) => PURGED_PREFIX + name))
      return n
    }
    await new Promise((resolve) => setTimeout(resolve, 200 * attempt))
  }
  return null
}

/**
 * The DROPs of the partitions a purge detached, one after another on a connection of their own,
 * once the purge's batches are done. Not in the detach's transaction: PostgreSQL unlinks a dropped
 * table's files at commit, before it lets go of the transaction's locks, so a DROP there held every
 * reader and writer of logs for 180–500 ms a partition at 10M rows, where the detach alone holds
 * them for milliseconds (bench/RESULTS.md, run R). Not beside the batches either: the unlinks
 * (70–150 ms a day's partition, mostly the kernel freeing its files) slowed the boundary day's
 * statement by half and the detaches' commits, which readers of logs wait for (run T). Detached,
 * a table is nobody's: dropping it locks only itself, and the purge's lock need not be held for
 * it. IF EXISTS: the next purge may already be dropping it as a leftover.
 */
class DropQueue {
  readonly #tables: string[] = []

  constructor (private readonly db: Kysely<Database>) {}

  /** One detached partition's tables (logs' and the rollup's). */
  add (tables: readonly string[]): void {
    this.#tables.push(...tables)
  }

  /** Drops every table added; stops at the first that fails (it stays for the next purge to drop). */
  async run (): Promise<void> {
    for (const table of this.#tables) await sql`drop table if exists ${sql.table(table)}`.execute(this.db)
  }
}

/**
 * The transaction of dropPartition: the rollups' share, then DETACH, and the table renamed so that
 * one left by a crash before its DROP is known for what it is; the same for the rollup's partition
 * of the period, whose rows are then not deleted one by one. Null when a lock was not had in time.
 */
async function detachPartition (conn: Conn, p: Droppable): Promise<number | null> {
  await sql`select pg_advisory_lock(${rollupWriteLock})`.execute(conn)
  try {
    return await conn.transaction().setIsolationLevel('repeatable read').execute(async (trx) => {
      await sql`lock table ${sql.table(p.name)} in share mode`.execute(trx)
      const { rows: [r] } = await dropPartitionStatement(p.from, p.to, p.rollup === null ? [] : [PARTITIONED_ROLLUP]).execute(trx)
      // DETACH … CONCURRENTLY would not block readers at all, but PostgreSQL refuses it while
      // logs has a default partition; a plain DETACH holds its lock for milliseconds.
      await sql`set local lock_timeout = ${sql.lit(DETACH_LOCK_TIMEOUT)}`.execute(trx)
      for (const { parent, name } of detachedBy(p)) {
        await sql`alter table ${sql.table(parent)} detach partition ${sql.table(name)}`.execute(trx)
        await sql`alter table ${sql.table(name)} rename to ${sql.table(PURGED_PREFIX + name)}`.execute(trx)
      }
      return Number(r?.n ?? 0)
    })
  } catch (err) {
    const code = (err as { code?: string }).code
    // 55P03 lock_not_available, 40P01 deadlock (the writer won), 40001 a row changed under the snapshot.
    if (code !== '55P03' && code !== '40P01' && code !== '40001') throw err
    return null
  } finally {
    await sql`select pg_advisory_unlock(${rollupWriteLock})`.execute(conn)
  }
}
