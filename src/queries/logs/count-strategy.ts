import { ginKeys, narrows, type LogFilter } from './filter.js'

// How a list finds its total: pure decisions over plain values, unit-tested without a database
// (test/unit/count-strategy.test.ts). The strategies themselves are in total.ts.

export interface CountLimits {
  /** above this many matches a total the rollups cannot answer is estimated, not counted */
  exactCountLimit: number
  /** up to this many matches a page is their bitmap sorted; beyond it, a walk in list order */
  bitmapPageLimit: number
  /** index entries of a user's rows a count may walk rather than intersect the GIN index */
  walkCountBudget: number
  /** the newest rows in scope a filtered list looks at first, to learn how dense its matches are */
  probeRows: number
}

export const COUNT_LIMITS: CountLimits = {
  exactCountLimit: 10_000,
  bitmapPageLimit: 2000,
  walkCountBudget: 100_000,
  probeRows: 2000
}

/**
 * - `rollup-page`: no filter but the scope and window: the page and its exact total from the
 *   rollups in one statement;
 * - `page-and-count`: at most one column of the GIN index: the page and the total side by side,
 *   as the planner sees fit;
 * - `probe-first`: two or more GIN columns (a channel and a model, a user and a group…) can match
 *   few rows or none although each matches hundreds of thousands, and no btree holds both, so a
 *   walk in list order could read all of one's rows: probe the scope first (chooseCountStrategy).
 */
export type ListPlan = 'rollup-page' | 'page-and-count' | 'probe-first'

export function chooseListPlan (f: LogFilter): ListPlan {
  if (!narrows(f) && f.tokenId === undefined) return 'rollup-page'
  return ginKeys(f) < 2 ? 'page-and-count' : 'probe-first'
}

/** The newest rows of a scope a probe read, and how many of them matched. */
export interface Probe {
  seen: number
  hits: number
}

/**
 * - `probe-exact`: the probe read the whole scope, so it counted the matches exactly;
 * - `extrapolate`: matches dense enough that their share of the probe, over the scope's exact
 *   size, lands well past the exact limit: the walk finds the page at once, the total is flagged;
 * - `user-walk`: a user's matches, where walking the user's covering index to count them reads
 *   at most walkCountBudget entries (fewer than the GIN intersection touches);
 * - `gin-count`: count by intersecting the GIN index's entries.
 */
export type CountStrategy = 'probe-exact' | 'extrapolate' | 'user-walk' | 'gin-count'

export function chooseCountStrategy (probe: Probe, scopeRows: number, userScoped: boolean, limits: CountLimits = COUNT_LIMITS): CountStrategy {
  if (probe.seen < limits.probeRows) return 'probe-exact'
  if (extrapolate(probe, scopeRows) > 2 * limits.exactCountLimit) return 'extrapolate'
  // The entries a walk reads before it has counted past the exact limit, or the whole scope.
  const walked = Math.min(scopeRows, (limits.exactCountLimit + 1) * probe.seen / Math.max(probe.hits, 1))
  if (userScoped && walked <= limits.walkCountBudget) return 'user-walk'
  return 'gin-count'
}

/** The matches a probe's share predicts over the whole scope. */
export function extrapolate (probe: Probe, scopeRows: number): number {
  return probe.seen === 0 ? 0 : probe.hits / probe.seen * scopeRows
}

/** After a GIN count of `n`: a few matches are their bitmap sorted, more are found by the walk. */
export function pageShapeAfterCount (n: number, limits: CountLimits = COUNT_LIMITS): 'bitmap' | 'walk' {
  return n <= limits.bitmapPageLimit ? 'bitmap' : 'walk'
}
