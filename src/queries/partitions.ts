import { CompiledQuery, sql, type Kysely, type Transaction } from 'kysely'
import type { Database } from '../db/types.js'
import { SECONDARY_INDEXES_SQL, type IndexDefinition } from '../seed/indexes.js'

// The optional time-partitioned layout of logs (LOG_PARTITIONS=day|month): logs range-partitioned
// by created_at (unix seconds, UTC periods), one partition per day or month, and logs_default for
// whatever has no partition (a row stamped years back or ahead). Everything else, the triggers, the
// rollups, the indexes, every query, is the same on both layouts: PostgreSQL routes rows and
// prunes partitions itself. What this module adds is the layout's upkeep: converting the plain
// table, creating partitions ahead of time, and dropping a whole old partition in one statement.

export type PartitionGrain = 'day' | 'month'

export const DEFAULT_PARTITION = 'logs_default'

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
  return { partitioned, grain, partitions, hasDefault }
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
      if (!layout.partitioned || layout.partitions.some((p) => p.from < end && start < p.to)) return false
      await createPartition(trx, { name, from: start, to: end }, layout.hasDefault)
      return true
    })
    if (made) created.push(name)
  }
  return created
}

async function createPartition (trx: Transaction<Database>, p: Partition, hasDefault: boolean): Promise<void> {
  // A wait for a lock held by a long reader (an export) gives up rather than queueing everyone
  // behind it; the next run tries again.
  await sql`set local lock_timeout = '5s'`.execute(trx)
  const table = sql.table(p.name)
  await sql`create table ${table} (like logs including defaults including storage)`.execute(trx)
  // The partition's bound as a constraint: ATTACH then trusts it instead of scanning the table.
  const bound = sql.raw(`${p.name}_bound`)
  await sql`alter table ${table} add constraint ${bound} check (created_at >= ${sql.lit(p.from)} and created_at < ${sql.lit(p.to)})`.execute(trx)
  if (hasDefault) {
    // Direct statements on partitions fire no trigger of logs: the rows stay in logs, and the
    // rollups already count them.
    const range = sql`created_at >= ${sql.lit(p.from)} and created_at < ${sql.lit(p.to)}`
    await sql`insert into ${table} select * from ${sql.table(DEFAULT_PARTITION)} where ${range}`.execute(trx)
    await sql`delete from ${sql.table(DEFAULT_PARTITION)} where ${range}`.execute(trx)
  }
  await sql`alter table logs attach partition ${table} for values from (${sql.lit(p.from)}) to (${sql.lit(p.to)})`.execute(trx)
  await sql`alter table ${table} drop constraint ${bound}`.execute(trx)
}

export interface ConvertOptions {
  /** unix seconds of "now": partitions reach PERIODS_AHEAD periods past it */
  now: number
  onStep?: (step: string) => void
}

/**
 * Converts the plain logs table into the partitioned layout, keeping every row, index, trigger
 * and the id sequence. One transaction: readers go on reading the old table while rows are copied
 * and indexes built, writers wait (EXCLUSIVE lock) and then write into the new table; only the
 * final swap blocks readers, for as long as a few renames take. Returns false when logs is
 * partitioned already.
 */
export async function convertToPartitions (db: Kysely<Database>, grain: PartitionGrain, opts: ConvertOptions): Promise<boolean> {
  return await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${layoutLock})`.execute(trx)
    await sql`set local statement_timeout = 0`.execute(trx)
    if ((await readLayout(trx)).partitioned) return false
    const step = opts.onStep ?? (() => {})
    await sql`lock table logs in exclusive mode`.execute(trx)

    const { rows: indexes } = await trx.executeQuery<IndexDefinition>(CompiledQuery.raw(SECONDARY_INDEXES_SQL, ['logs']))
    const { rows: triggers } = await sql<{ definition: string }>`
      select pg_get_triggerdef(oid) as definition from pg_trigger
       where tgrelid = 'logs'::regclass and not tgisinternal order by oid`.execute(trx)

    await sql`create table logs_partitioned (like logs including defaults including storage) partition by range (created_at)`.execute(trx)
    // A primary key of a partitioned table holds the partition key; ids stay unique by the sequence.
    await sql`alter table logs_partitioned add constraint logs_partitioned_pkey primary key (id, created_at)`.execute(trx)
    const { rows: periods } = await sql<{ start: string }>`
      select distinct ${grain === 'day'
        ? sql`created_at / 86400 * 86400`
        : sql`extract(epoch from date_trunc('month', to_timestamp(created_at) at time zone 'UTC'))::int8`} as start
        from logs where created_at >= ${OLDEST_PERIOD} and created_at < ${periodStart(grain, opts.now)}`.execute(trx)
    const starts = [
      ...periods.map((r) => Number(r.start)),
      ...periodsBetween(grain, opts.now, periodAhead(grain, opts.now))
    ].sort((a, b) => a - b)
    for (const start of starts) {
      await sql`create table ${sql.table(partitionName(grain, start))} partition of logs_partitioned
        for values from (${sql.lit(start)}) to (${sql.lit(periodEnd(grain, start))})`.execute(trx)
    }
    await sql`create table ${sql.table(DEFAULT_PARTITION)} partition of logs_partitioned default`.execute(trx)
    step(`created ${starts.length} ${grain} partitions and ${DEFAULT_PARTITION}`)

    const { numAffectedRows } = await sql`insert into logs_partitioned select * from logs`.execute(trx)
    step(`copied ${String(numAffectedRows ?? 0)} rows`)
    for (const index of indexes) {
      await sql.raw(index.definition
        .replace(/^(CREATE (?:UNIQUE )?INDEX )(\S+)/, `$1${index.name}_partitioned`)
        .replace(/ ON (?:ONLY )?(?:public\.)?logs /, ' ON logs_partitioned ')).execute(trx)
      step(`built ${index.name}`)
    }

    // The swap. The id sequence is owned by the old table's column: it would go with it.
    const { rows: [serial] } = await sql<{ seq: string | null }>`select pg_get_serial_sequence('logs', 'id') as seq`.execute(trx)
    if (serial?.seq != null) await sql`alter sequence ${sql.raw(serial.seq)} owned by logs_partitioned.id`.execute(trx)
    await sql`drop table logs`.execute(trx)
    await sql`alter table logs_partitioned rename to logs`.execute(trx)
    await sql`alter table logs rename constraint logs_partitioned_pkey to logs_pkey`.execute(trx)
    for (const index of indexes) {
      await sql`alter index ${sql.table(`${index.name}_partitioned`)} rename to ${sql.table(index.name)}`.execute(trx)
    }
    for (const trigger of triggers) await sql.raw(trigger.definition).execute(trx)
    step('swapped in the partitioned table')
    return true
  })
}

/** The start of the period PERIODS_AHEAD past the one holding `now`: partitions reach up to it. */
export function periodAhead (grain: PartitionGrain, now: number): number {
  let s = periodStart(grain, now)
  for (let i = 0; i <= PERIODS_AHEAD[grain]; i++) s = periodEnd(grain, s)
  return s
}
