import { CompiledQuery, sql, type Kysely, type RawBuilder, type Transaction } from 'kysely'
import type { Database } from '../db/types.js'
import { SECONDARY_INDEXES_SQL, type IndexDefinition } from '../seed/indexes.js'
import { HOUR, rollupAt } from './rollups/model.js'

// The optional time-partitioned layout of logs (LOG_PARTITIONS=day|month): logs range-partitioned
// by created_at (unix seconds, UTC periods), one partition per day or month, and logs_default for
// whatever has no partition (a row stamped years back or ahead). The per-user hourly rollup is
// partitioned by the same periods (on its hour column), so that a purge drops a period's rollup
// rows with its log rows: they were most of what a partitioned purge still deleted row by row, and
// of the vacuum after it (bench/RESULTS.md, run S). The other rollups stay whole: readers read a
// user's days across all of history, and would open every partition to do it (run Q). Everything
// else, the triggers, the indexes, every query, is the same on both layouts: PostgreSQL routes rows
// and prunes partitions itself. What this module adds is the layout's upkeep: converting the plain
// tables, creating partitions ahead of time, and dropping a whole old partition in one statement.

export type PartitionGrain = 'day' | 'month'

export const DEFAULT_PARTITION = 'logs_default'

/** The rollup partitioned with logs: its unit column counts hours. */
export const PARTITIONED_ROLLUP = rollupAt('user', HOUR)!.table

/** The rollup's partition of a logs partition's period: logs_stat_hourly_user_p20261201. */
export function rollupPartitionName (logsPartition: string): string {
  return PARTITIONED_ROLLUP + logsPartition.slice('logs'.length)
}

const ROLLUP_DEFAULT = `${PARTITIONED_ROLLUP}_default`

/** Periods created ahead of the current one: a week of days, two months. */
export const PERIODS_AHEAD: Record<PartitionGrain, number> = { day: 7, month: 2 }

/** Rows older than this (2000-01-01) have no partition of their own at conversion: they are stragglers. */
const OLDEST_PERIOD = 946_684_800

export interface Partition {
  name: string
  /** created_at range [from, to) */
  from: number
  to: number
}

export interface LogsLayout {
  partitioned: boolean
  /** null when not partitioned, or partitioned with no range partition yet */
  grain: PartitionGrain | null
  /** range partitions, oldest first */
  partitions: Partition[]
  hasDefault: boolean
  /** PARTITIONED_ROLLUP's partitions by name when it is partitioned (a database converted before it was, has it whole) */
  rollupPartitions: Set<string> | null
}

/** Unix seconds of the start of the UTC day or month that holds `ts`. */
export function periodStart (grain: PartitionGrain, ts: number): number {
  if (grain === 'day') return Math.floor(ts / 86_400) * 86_400
  const d = new Date(ts * 1000)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) / 1000
}

/** Unix seconds of the start of the period after the one starting at `start`. */
export function periodEnd (grain: PartitionGrain, start: number): number {
  if (grain === 'day') return start + 86_400
  const d = new Date(start * 1000)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000
}

/** logs_p20261201 for a day, logs_p202612 for a month. */
export function partitionName (grain: PartitionGrain, start: number): string {
  const iso = new Date(start * 1000).toISOString()
  const digits = iso.slice(0, 10).replace(/-/g, '')
  return `logs_p${grain === 'day' ? digits : digits.slice(0, 6)}`
}

/** Every period start from the one holding `from` up to (not including) `to`. */
export function periodsBetween (grain: PartitionGrain, from: number, to: number): number[] {
  const starts: number[] = []
  for (let s = periodStart(grain, from); s < to; s = periodEnd(grain, s)) starts.push(s)
  return starts
}

const BOUND = /^FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)$/

/** The layout of logs as the catalog has it. */
export async function readLayout (db: Kysely<Database>): Promise<LogsLayout> {
  const { rows } = await sql<{ kind: string, name: string | null, bound: string | null }>`
    select p.relkind as kind, c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
      from pg_class p
      left join pg_inherits i on i.inhparent = p.oid
      left join pg_class c on c.oid = i.inhrelid
     where p.oid = 'logs'::regclass`.execute(db)
  const partitioned = rows[0]?.kind === 'p'
  const partitions: Partition[] = []
  let hasDefault = false
  for (const row of rows) {
    if (row.name === null || row.bound === null) continue
    if (row.bound === 'DEFAULT') {
      hasDefault = true
      continue
    }
    const m = BOUND.exec(row.bound)
    if (m === null) throw new Error(`logs partition ${row.name} has a bound this service does not manage: ${row.bound}`)
    partitions.push({ name: row.name, from: Number(m[1]), to: Number(m[2]) })
  }
  partitions.sort((a, b) => a.from - b.from)
  const first = partitions[0]
  const grain = first === undefined ? null : first.to - first.from === 86_400 ? 'day' : 'month'
  return { partitioned, grain, partitions, hasDefault, rollupPartitions: await readRollupPartitions(db) }
}

async function readRollupPartitions (db: Kysely<Database>): Promise<Set<string> | null> {
  const { rows } = await sql<{ kind: string, name: string | null }>`
    select p.relkind as kind, c.relname as name
      from pg_class p
      left join pg_inherits i on i.inhparent = p.oid
      left join pg_class c on c.oid = i.inhrelid
     where p.oid = ${PARTITIONED_ROLLUP}::regclass`.execute(db)
  if (rows[0]?.kind !== 'p') return null
  return new Set(rows.flatMap((r) => r.name === null ? [] : [r.name]))
}

// One layout change at a time across every instance (partition upkeep, conversion).
const layoutLock = sql`hashtextextended('log-service:logs-layout', 0)`

/**
 * Partitions for every period from the one holding `from` to the one holding `to`, those missing.
 * Each is created as a table of its own and attached, which locks logs only against other schema
 * changes (SHARE UPDATE EXCLUSIVE): readers and writers go on. Rows of its period that waited in
 * logs_default move into it first. Returns the names created.
 */
export async function ensurePartitions (db: Kysely<Database>, grain: PartitionGrain, from: number, to: number): Promise<string[]> {
  const created: string[] = []
  for (const start of periodsBetween(grain, from, periodEnd(grain, periodStart(grain, to)))) {
    const end = periodEnd(grain, start)
    const name = partitionName(grain, start)
    const made = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${layoutLock})`.execute(trx)
      // Read under the lock: another instance may have made it meanwhile.
      const layout = await readLayout(trx)
      if (!layout.partitioned) return false
      // A wait for a lock held by a long reader (an export) gives up rather than queueing everyone
      // behind it; the next run tries again.
      await sql`set local lock_timeout = '5s'`.execute(trx)
      const made = !layout.partitions.some((p) => p.from < end && start < p.to)
      if (made) await attachNew(trx, LOGS, { name, from: start, to: end })
      // The rollup's partition, with the period's own or (for a period made before the rollup was
      // partitioned) on its own.
      const rollupName = rollupPartitionName(name)
      if (layout.rollupPartitions !== null && !layout.rollupPartitions.has(rollupName) && (made || layout.partitions.some((p) => p.name === name))) {
        await attachNew(trx, ROLLUP, { name: rollupName, from: start, to: end })
      }
      return made
    })
    if (made) created.push(name)
  }
  return created
}

/** A table partitioned by time: the column, and how many seconds its unit is. */
interface TimeTable {
  table: string
  column: string
  seconds: number
  defaultPartition: string
}

const LOGS: TimeTable = { table: 'logs', column: 'created_at', seconds: 1, defaultPartition: DEFAULT_PARTITION }
const ROLLUP: TimeTable = { table: PARTITIONED_ROLLUP, column: 'hour', seconds: HOUR, defaultPartition: ROLLUP_DEFAULT }

type Literal = ReturnType<typeof sql.lit>

/** A period [from, to) of unix seconds as the table's column bounds. */
function boundsOf (t: TimeTable, p: Partition): [Literal, Literal] {
  return [sql.lit(p.from / t.seconds), sql.lit(p.to / t.seconds)]
}

/**
 * A new partition: created as a table of its own and attached, which locks the parent only
 * against other schema changes (SHARE UPDATE EXCLUSIVE): readers and writers go on. Rows of its
 * period that waited in the default partition move into it first.
 */
async function attachNew (trx: Transaction<Database>, t: TimeTable, p: Partition): Promise<void> {
  const table = sql.table(p.name)
  const [from, to] = boundsOf(t, p)
  const column = sql.ref(t.column)
  await sql`create table ${table} (like ${sql.table(t.table)} including defaults including storage)`.execute(trx)
  // The partition's bound as a constraint: ATTACH then trusts it instead of scanning the table.
  const bound = sql.raw(`${p.name}_bound`)
  await sql`alter table ${table} add constraint ${bound} check (${column} >= ${from} and ${column} < ${to})`.execute(trx)
  if (await hasDefault(trx, t)) {
    // Direct statements on partitions fire no trigger of logs: the rows stay in their table, and
    // the rollups already count them.
    const range = sql`${column} >= ${from} and ${column} < ${to}`
    await sql`insert into ${table} select * from ${sql.table(t.defaultPartition)} where ${range}`.execute(trx)
    await sql`delete from ${sql.table(t.defaultPartition)} where ${range}`.execute(trx)
  }
  await sql`alter table ${sql.table(t.table)} attach partition ${table} for values from (${from}) to (${to})`.execute(trx)
  await sql`alter table ${table} drop constraint ${bound}`.execute(trx)
}

async function hasDefault (trx: Transaction<Database>, t: TimeTable): Promise<boolean> {
  const { rows } = await sql<{ one: number }>`select 1 as one from pg_partitioned_table where partrelid = ${t.table}::regclass and partdefid <> 0`.execute(trx)
  return rows.length > 0
}

export interface ConvertOptions {
  /** unix seconds of "now": partitions reach PERIODS_AHEAD periods past it */
  now: number
  onStep?: (step: string) => void
}

/**
 * Converts the plain logs table into the partitioned layout, keeping every row, index, trigger
 * and the id sequence, and the per-user hourly rollup with it (or alone, for logs converted
 * before it was). One transaction: readers go on reading the old tables while rows are copied
 * and indexes built, writers wait (EXCLUSIVE lock) and then write into the new tables; only the
 * final swaps block readers, for as long as a few renames take. Returns false when both are
 * partitioned already.
 */
export async function convertToPartitions (db: Kysely<Database>, grain: PartitionGrain, opts: ConvertOptions): Promise<boolean> {
  return await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${layoutLock})`.execute(trx)
    await sql`set local statement_timeout = 0`.execute(trx)
    const before = await readLayout(trx)
    if (before.partitioned && before.rollupPartitions !== null) return false
    const step = opts.onStep ?? (() => {})
    if (!before.partitioned) await convertLogs(trx, grain, opts.now, step)
    if (before.rollupPartitions !== null) return true
    // The rollup takes the periods logs has, whoever made them.
    const { partitions } = await readLayout(trx)
    const { rows: [pk] } = await sql<{ def: string }>`select pg_get_constraintdef(oid) as def from pg_constraint
      where conrelid = ${PARTITIONED_ROLLUP}::regclass and contype = 'p'`.execute(trx)
    await swapInPartitioned(trx, ROLLUP, partitions.map((p) => ({ ...p, name: rollupPartitionName(p.name) })), `partitions of ${PARTITIONED_ROLLUP}`, sql.raw(pk!.def), step)
    step(`swapped in the partitioned ${PARTITIONED_ROLLUP}`)
    return true
  })
}

async function convertLogs (trx: Transaction<Database>, grain: PartitionGrain, now: number, step: (s: string) => void): Promise<void> {
  // Before the periods are read: a row written after would have no partition made for it.
  await sql`lock table logs in exclusive mode`.execute(trx)
  const { rows: triggers } = await sql<{ definition: string }>`
    select pg_get_triggerdef(oid) as definition from pg_trigger
     where tgrelid = 'logs'::regclass and not tgisinternal order by oid`.execute(trx)
  const { rows: periods } = await sql<{ start: string }>`
    select distinct ${grain === 'day'
      ? sql`created_at / 86400 * 86400`
      : sql`extract(epoch from date_trunc('month', to_timestamp(created_at) at time zone 'UTC'))::int8`} as start
      from logs where created_at >= ${OLDEST_PERIOD} and created_at < ${periodStart(grain, now)}`.execute(trx)
  const starts = [
    ...periods.map((r) => Number(r.start)),
    ...periodsBetween(grain, now, periodAhead(grain, now))
  ].sort((a, b) => a - b)
  const partitions = starts.map((start) => ({ name: partitionName(grain, start), from: start, to: periodEnd(grain, start) }))
  // A primary key of a partitioned table holds the partition key; ids stay unique by the sequence.
  await swapInPartitioned(trx, LOGS, partitions, `${grain} partitions`, sql`primary key (id, created_at)`, step, async () => {
    // The id sequence is owned by the old table's column: it would go with it.
    const { rows: [serial] } = await sql<{ seq: string | null }>`select pg_get_serial_sequence('logs', 'id') as seq`.execute(trx)
    if (serial?.seq != null) await sql`alter sequence ${sql.raw(serial.seq)} owned by logs_partitioned.id`.execute(trx)
  })
  for (const trigger of triggers) await sql.raw(trigger.definition).execute(trx)
  step('swapped in the partitioned table')
}

/**
 * The table's partitioned copy, `<table>_partitioned`, with a partition per period and a default
 * one, every row and secondary index; then the swap: the old table dropped, the copy renamed.
 */
async function swapInPartitioned (
  trx: Transaction<Database>, t: TimeTable, partitions: Partition[], label: string, primaryKey: RawBuilder<unknown>,
  step: (s: string) => void, beforeDrop?: () => Promise<void>
): Promise<void> {
  const copy = `${t.table}_partitioned`
  await sql`lock table ${sql.table(t.table)} in exclusive mode`.execute(trx)
  const { rows: indexes } = await trx.executeQuery<IndexDefinition>(CompiledQuery.raw(SECONDARY_INDEXES_SQL, [t.table]))
  await sql`create table ${sql.table(copy)} (like ${sql.table(t.table)} including defaults including storage) partition by range (${sql.ref(t.column)})`.execute(trx)
  await sql`alter table ${sql.table(copy)} add constraint ${sql.ref(`${copy}_pkey`)} ${primaryKey}`.execute(trx)
  for (const p of partitions) {
    const [from, to] = boundsOf(t, p)
    await sql`create table ${sql.table(p.name)} partition of ${sql.table(copy)} for values from (${from}) to (${to})`.execute(trx)
  }
  await sql`create table ${sql.table(t.defaultPartition)} partition of ${sql.table(copy)} default`.execute(trx)
  step(`created ${partitions.length} ${label} and ${t.defaultPartition}`)

  const { numAffectedRows } = await sql`insert into ${sql.table(copy)} select * from ${sql.table(t.table)}`.execute(trx)
  step(`copied ${String(numAffectedRows ?? 0)} rows${t === LOGS ? '' : ` of ${t.table}`}`)
  const on = new RegExp(` ON (?:ONLY )?(?:public\\.)?${t.table} `)
  for (const index of indexes) {
    await sql.raw(index.definition
      .replace(/^(CREATE (?:UNIQUE )?INDEX )(\S+)/, `$1${index.name}_partitioned`)
      .replace(on, ` ON ${copy} `)).execute(trx)
    step(`built ${index.name}`)
  }

  await beforeDrop?.()
  await sql`drop table ${sql.table(t.table)}`.execute(trx)
  await sql`alter table ${sql.table(copy)} rename to ${sql.table(t.table)}`.execute(trx)
  await sql`alter table ${sql.table(t.table)} rename constraint ${sql.ref(`${copy}_pkey`)} to ${sql.ref(`${t.table}_pkey`)}`.execute(trx)
  for (const index of indexes) {
    await sql`alter index ${sql.table(`${index.name}_partitioned`)} rename to ${sql.table(index.name)}`.execute(trx)
  }
}

/** The start of the period PERIODS_AHEAD past the one holding `now`: partitions reach up to it. */
export function periodAhead (grain: PartitionGrain, now: number): number {
  let s = periodStart(grain, now)
  for (let i = 0; i <= PERIODS_AHEAD[grain]; i++) s = periodEnd(grain, s)
  return s
}
