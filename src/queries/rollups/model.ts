import { sql, type RawBuilder } from 'kysely'

// The rollups of logs, declared once. The window planner, the readers' sums, the fold, the purge's
// per-unit deletes, the seed's direct writes and the Database types are all derived from ROLLUPS:
// adding a grain is one entry here and one migration that creates its table (primary key on
// keyColumns() INCLUDE (n, quota)), fills it from the existing rows, and adds it to the tables
// the TRUNCATE trigger's function (logs_stat_on_truncate) empties.
//
// Rules every entry obeys (checked at load by assertRollupModel):
// - a scope's grains nest: each one's seconds are a whole multiple of the next finer one's, and the
//   finest is a whole number of minutes, the resolution of the triggers' deltas;
// - unit 0 of any grain is never read (integer division also puts negative timestamps there): rows
//   before the first whole unit of a scope's finest grain are read from logs;
// - a unit's row is the sum of every log row with created_at in [unit * seconds, (unit + 1) * seconds)
//   and the scope's key (the user for 'user'), per type, once the deltas are folded.

export const MINUTE = 60
export const HOUR = 3600
export const DAY = 86_400

export type Scope = 'site' | 'user'

export interface RollupSpec {
  readonly table: string
  /** 'site' sums every user's rows; 'user' keeps them per user_id */
  readonly scope: Scope
  /** the unit column: created_at / seconds */
  readonly unit: string
  readonly seconds: number
}

export const ROLLUPS = [
  { table: 'logs_stat_minutely', scope: 'site', unit: 'minute', seconds: MINUTE },
  { table: 'logs_stat_hourly', scope: 'site', unit: 'hour', seconds: HOUR },
  { table: 'logs_stat_hourly_user', scope: 'user', unit: 'hour', seconds: HOUR },
  { table: 'logs_stat_daily_user', scope: 'user', unit: 'day', seconds: DAY }
] as const satisfies readonly RollupSpec[]

export type Rollup = typeof ROLLUPS[number]
export type RollupTable = Rollup['table']

/** Where the triggers append one row per (user, minute, type) of each write; the fold empties it. */
export const DELTA_TABLE = 'logs_stat_delta'
export const DELTA_SECONDS = MINUTE

/** Sums every rollup row and delta row carries, by type. */
export interface StatSums {
  type: number
  n: number
  quota: number
  prompt_tokens: number
  completion_tokens: number
}

export const SUM_COLUMNS = ['n', 'quota', 'prompt_tokens', 'completion_tokens'] as const

/** The Database interface's entries for the rollups, derived from ROLLUPS. */
export type RollupTables = {
  [R in Rollup as R['table']]: StatSums & Record<R['unit'], number> & (R['scope'] extends 'user' ? { user_id: number } : unknown)
}

/** Unit 0 is never read: the first unit a reader or a purge may take from a rollup. */
export const FIRST_UNIT = 1

/** Primary key columns, time first after the user: the order readers' ranges follow. */
export function keyColumns (r: RollupSpec): string[] {
  return r.scope === 'user' ? ['user_id', r.unit, 'type'] : [r.unit, 'type']
}

/** A scope's grains, finest first. */
export function grainsOf (scope: Scope): Rollup[] {
  return ROLLUPS.filter((r) => r.scope === scope).sort((a, b) => a.seconds - b.seconds)
}

export const SCOPES: readonly Scope[] = ['site', 'user']

/** The rollup of a scope at exactly this grain, if there is one. */
export function rollupAt (scope: Scope, seconds: number): Rollup | undefined {
  return ROLLUPS.find((r) => r.scope === scope && r.seconds === seconds)
}

/** Throws when an entry breaks a rule the readers, the fold or the purge rely on. */
export function assertRollupModel (rollups: readonly RollupSpec[]): void {
  for (const scope of SCOPES) {
    const grains = rollups.filter((r) => r.scope === scope).sort((a, b) => a.seconds - b.seconds)
    if (grains.length === 0) throw new Error(`rollup model: no grain for scope ${scope}`)
    if (grains[0]!.seconds % DELTA_SECONDS !== 0) throw new Error(`rollup model: ${grains[0]!.table} is not a whole number of delta minutes`)
    for (let i = 1; i < grains.length; i++) {
      if (grains[i]!.seconds % grains[i - 1]!.seconds !== 0 || grains[i]!.seconds === grains[i - 1]!.seconds) {
        throw new Error(`rollup model: ${grains[i]!.table} does not nest over ${grains[i - 1]!.table}`)
      }
    }
  }
}

assertRollupModel(ROLLUPS)

/** `created_at`-minute (a delta's `minute`) to a rollup's unit, as SQL over a column of minutes. */
export function unitOfMinute (r: RollupSpec, minute: RawBuilder<unknown>): RawBuilder<number> {
  return r.seconds === DELTA_SECONDS ? sql<number>`${minute}` : sql<number>`${minute} / ${sql.lit(r.seconds / DELTA_SECONDS)}`
}
