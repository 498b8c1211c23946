import { sql, type Kysely } from 'kysely'
import { prepared } from '../../db/plan.js'
import type { Database } from '../../db/types.js'
import { exactSums, exactSumsQuery } from '../rollups/read.js'
import {
  chooseCountStrategy, chooseListPlan, COUNT_LIMITS, extrapolate, pageShapeAfterCount,
  type CountLimits, type Probe
} from './count-strategy.js'
import { planFor, rollupAnswers, scopeOf, whereLogs, withoutScope, type LogFilter } from './filter.js'
import { listPage, pageOffset, type PageRequest, type PageShape } from './page.js'

// A list's total, and a page together with its total, by the strategy count-strategy.ts chooses.

export interface Total {
  total: number
  exact: boolean
}

export interface PageWithTotal<T> {
  items: T[]
  total: Total
}

function matchingRows (db: Kysely<Database>, f: LogFilter) {
  return db.selectFrom('logs').select(sql<number>`1`.as('one')).where((eb) => whereLogs(eb, f))
}

/** Matches counted up to the exact limit + 1: an index scan that stops there. */
async function cappedCount (db: Kysely<Database>, f: LogFilter, limits: CountLimits): Promise<number> {
  const capped = await db.selectFrom(matchingRows(db, f).limit(limits.exactCountLimit + 1).as('m'))
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .withPlugin(planFor(f, 'capped-count'))
    .executeTakeFirstOrThrow()
  return Number(capped.n)
}

/** A capped count as the total: itself up to the exact limit, beyond it the planner's estimate, flagged. */
async function totalOf (db: Kysely<Database>, f: LogFilter, n: number, limits: CountLimits): Promise<Total> {
  if (n <= limits.exactCountLimit) return { total: n, exact: true }
  const [plan] = await matchingRows(db, f).explain<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>('json')
  const estimate = plan?.['QUERY PLAN'][0]?.Plan['Plan Rows'] ?? 0
  return { total: Math.max(Math.round(estimate), limits.exactCountLimit + 1), exact: false }
}

/**
 * The list's total: exact from the rollups where they answer; else an exact count up to the exact
 * limit and, beyond it, the planner's estimate, flagged as such.
 */
export async function countLogs (db: Kysely<Database>, f: LogFilter, limits: CountLimits = COUNT_LIMITS): Promise<Total> {
  if (rollupAnswers(f)) return { total: (await exactSums(db, f)).n, exact: true }
  return await totalOf(db, f, await cappedCount(db, f, limits), limits)
}

/** A page and its total, by the list plan its filter calls for (count-strategy.ts). */
export async function pageWithTotal<T extends object> (
  db: Kysely<Database>, f: LogFilter, page: PageRequest, shape: PageShape<T>, limits: CountLimits = COUNT_LIMITS
): Promise<PageWithTotal<T>> {
  switch (chooseListPlan(f)) {
    case 'rollup-page': return await pageJoinedToSums(db, f, page, shape)
    case 'page-and-count': {
      const [items, total] = await Promise.all([listPage(db, f, page, shape), countLogs(db, f, limits)])
      return { items, total }
    }
    case 'probe-first': return await db.transaction().execute(async (trx) => await probeThenCount(trx, f, page, shape, limits))
  }
}

/**
 * The page lateral-joined to the rollup sums, in one statement: a round trip, and the socket
 * writes that go with it, saved on the most common list of all (bench/RESULTS.md). Raw sql: the
 * same statement through leftJoinLateral cost 12 µs more of the event loop per request (of ~65 to
 * build and compile it), measured on this, the busiest statement of the service.
 */
async function pageJoinedToSums<T extends object> (db: Kysely<Database>, f: LogFilter, page: PageRequest, shape: PageShape<T>): Promise<PageWithTotal<T>> {
  const { rows } = await sql<T & { created_at: number | null, total_n: number }>`
    select p.*, t.n as total_n from (${exactSumsQuery(db, f)}) t
    left join lateral (${shape.build(db, f, page)}) p on true
    order by p.created_at desc, p.id desc`.withPlugin(prepared(`${shape.label}-with-total`)).execute(db)
  const total = { total: rows[0]?.total_n ?? 0, exact: true }
  if (rows[0]?.created_at == null) return { items: [], total }
  return { items: rows.map(({ total_n: _, ...item }) => item as unknown as T), total }
}

/** Reads the newest rows of the filter's scope (the user and the window; index-only for a user). */
async function probeScope (trx: Kysely<Database>, f: LogFilter, limits: CountLimits): Promise<Probe> {
  const probe = await trx.selectFrom(
    trx.selectFrom('logs').where((eb) => whereLogs(eb, scopeOf(f)))
      .select((eb) => sql<boolean>`${whereLogs(eb, withoutScope(f))}`.as('hit'))
      .orderBy('logs.created_at', 'desc').orderBy('logs.id', 'desc').limit(limits.probeRows).as('p'))
    .select([sql<string>`count(*)`.as('seen'), sql<string>`count(*) filter (where hit)`.as('hits')])
    .executeTakeFirstOrThrow()
  return { seen: Number(probe.seen), hits: Number(probe.hits) }
}

/** The probe, then the strategy it calls for, each with the plan's shape set for the transaction. */
async function probeThenCount<T> (trx: Kysely<Database>, f: LogFilter, page: PageRequest, shape: PageShape<T>, limits: CountLimits): Promise<PageWithTotal<T>> {
  const probe = await probeScope(trx, f, limits)
  // A probe that read fewer rows than it asked for read the whole scope.
  const scopeRows = probe.seen < limits.probeRows ? probe.seen : (await exactSums(trx, scopeOf(f))).n
  const list = async () => await listPage(trx, f, page, shape)
  // Past the end of what was counted there is no page to fetch.
  const pageOf = async (matches: number) => page.after === undefined && pageOffset(page) >= matches ? [] : await list()
  switch (chooseCountStrategy(probe, scopeRows, f.userId !== undefined, limits)) {
    case 'probe-exact':
      await planShape(trx, 'walk')
      return { items: await pageOf(probe.hits), total: { total: probe.hits, exact: true } }
    case 'extrapolate':
      await planShape(trx, 'walk')
      return { items: await list(), total: { total: Math.round(extrapolate(probe, scopeRows)), exact: false } }
    case 'user-walk': {
      await planShape(trx, 'walk')
      const n = await cappedCount(trx, f, limits)
      return { items: await pageOf(n), total: await totalOf(trx, f, n, limits) }
    }
    case 'gin-count': {
      await planShape(trx, 'bitmap')
      const n = await cappedCount(trx, f, limits)
      if (pageShapeAfterCount(n, limits) === 'bitmap') return { items: await pageOf(n), total: { total: n, exact: true } }
      await planShape(trx, 'walk')
      return { items: await list(), total: await totalOf(trx, f, n, limits) }
    }
  }
}

/**
 * For the rest of the transaction (SET LOCAL): 'walk' reads an index in list order (no bitmap
 * scans), 'bitmap' only bitmap scans (the GIN intersection, then a sort). The planner, which takes
 * the columns for independent, expects a handful of matches where they are dense, and sorts a
 * bitmap of all of them instead of walking.
 */
async function planShape (trx: Kysely<Database>, shape: 'walk' | 'bitmap'): Promise<void> {
  const [walk, bitmap] = shape === 'walk' ? ['on', 'off'] : ['off', 'on']
  await sql`select set_config('enable_bitmapscan', ${bitmap}, true), set_config('enable_indexscan', ${walk}, true),
    set_config('enable_indexonlyscan', ${walk}, true), set_config('enable_seqscan', ${walk}, true)`.withPlugin(prepared('plan-shape')).execute(trx)
}
