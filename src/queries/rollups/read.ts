import { sql, type Kysely, type RawBuilder } from 'kysely'
import { prepared } from '../../db/plan.js'
import type { Database } from '../../db/types.js'
import { whereLogs, withoutWindow, type LogFilter } from '../logs/filter.js'
import { DELTA_TABLE, grainsOf, type Rollup, type StatSums } from './model.js'
import { planWindow, type UnitRange } from './window.js'

// Readers' sums: the exact row count and quota of a user (or the site), a type and a window, from
// the rollups where whole units fit, the pending deltas, and logs at the ragged ends.

/** A unit or timestamp bound: a parameter, or a literal where it is the same for every request. */
type Bound = number | RawBuilder<number>

interface BoundRange { first: Bound, last: Bound }

const sums = [sql<number>`sum(n)`.as('n'), sql<number>`sum(quota)`.as('quota')]

function rawSums (db: Kysely<Database>, f: LogFilter, start: Bound | undefined, end: Bound | undefined) {
  let query = db.selectFrom('logs')
    .where((eb) => whereLogs(eb, withoutWindow(f)))
    .select([sql<number>`count(*)`.as('n'), sql<number>`sum(logs.quota)`.as('quota')])
  if (start !== undefined) query = query.where('logs.created_at', '>=', start)
  if (end !== undefined) query = query.where('logs.created_at', '<=', end)
  return query
}

type RollupRow = StatSums & { user_id: number }

function rollupSums (db: Kysely<Database>, r: Rollup, f: LogFilter, range: BoundRange) {
  // The table is the model's: the builder cannot type a table chosen at run time, so it is read
  // as the columns every rollup has.
  const rollups = db as unknown as Kysely<Record<string, RollupRow & Record<string, number>>>
  let query = rollups.selectFrom(r.table).select(sums)
  if (r.scope === 'user') query = query.where('user_id', '=', f.userId!)
  query = query.where(r.unit, '>=', range.first).where(r.unit, '<=', range.last)
  return f.type ? query.where('type', '=', f.type) : query
}

function deltaSums (db: Kysely<Database>, f: LogFilter, range: BoundRange) {
  let query = db.selectFrom(DELTA_TABLE).select(sums).where('minute', '>=', range.first).where('minute', '<=', range.last)
  if (f.type) query = query.where('type', '=', f.type)
  if (f.userId !== undefined) query = query.where('user_id', '=', f.userId)
  return query
}

/**
 * The sums as one statement (one snapshot), to run alone or inside another: the scope's rollups
 * (the site's hours and minutes, or a user's days and hours), the deltas not folded yet, and from
 * logs only the seconds (site) or minutes (user) at the ragged ends, through (type, created_at) or
 * the covering (user_id, created_at, id) index. A 30-day window reads at most ~840 site rollup
 * rows or ~80 per type for a user, and at most two partial units of log rows.
 */
export function exactSumsQuery (db: Kysely<Database>, f: LogFilter) {
  const grains = grainsOf(f.userId === undefined ? 'site' : 'user')
  const plan = planWindow(f.startTimestamp, f.endTimestamp, grains.map((g) => g.seconds))
  // Without a window every bound is the same for every request: as literals, the statement's
  // generic plan costs what a custom one does, so PostgreSQL keeps it and plans it no more. As
  // parameters it planned every call, and the plan of `created_at <= 3599` asks the (created_at,
  // id) index for its actual minimum: after a purge, until a vacuum, a walk over millions of dead
  // entries (120 ms of planning a request, bench/RESULTS.md).
  const literal = f.startTimestamp === undefined && f.endTimestamp === undefined
  const b = (v: number | undefined): Bound | undefined => v === undefined || !literal ? v : sql<number>`${sql.lit(v)}`
  const range = (r: UnitRange): BoundRange => ({ first: b(r.first)!, last: b(r.last)! })
  const [first, ...rest] = plan.raw
  let parts = rawSums(db, f, b(first?.start), b(first?.end))
  for (const r of rest) parts = parts.unionAll(rawSums(db, f, b(r.start), b(r.end)))
  for (const u of plan.units) parts = parts.unionAll(rollupSums(db, grains.find((g) => g.seconds === u.seconds)!, f, range(u)))
  if (plan.delta !== null) parts = parts.unionAll(deltaSums(db, f, range(plan.delta)))
  return db.selectFrom(parts.as('parts'))
    .select([sql<number>`coalesce(sum(n), 0)::int8`.as('n'), sql<number>`coalesce(sum(quota), 0)::int8`.as('quota')])
}

// Prepared: the rollups are small tables read by key whatever the values, and a window without
// bounds is all literals (above).
const sumsPlan = prepared('rollup-sums')

export async function exactSums (db: Kysely<Database>, f: LogFilter): Promise<{ n: number, quota: number }> {
  return await exactSumsQuery(db, f).withPlugin(sumsPlan).executeTakeFirstOrThrow()
}
