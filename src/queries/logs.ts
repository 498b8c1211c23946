import { CompiledQuery, sql, type ExpressionBuilder, type Expression, type RawBuilder, type SelectQueryBuilder, type SqlBool, type Kysely } from 'kysely'
import type { Database } from '../db/types.js'
import type { AdminItem, UserItem } from '../schemas/log.js'

export interface LogFilter {
  userId?: number
  tokenId?: number
  /** 0 or undefined: every type */
  type?: number
  startTimestamp?: number
  endTimestamp?: number
  tokenName?: string
  modelName?: string
  group?: string
  requestId?: string
  username?: string
  /** 0 or undefined: every channel */
  channel?: number
}

export interface PageRequest {
  page: number
  pageSize: number
  /** keyset position: rows strictly older than this (created_at, id); the page number is then ignored */
  after?: { createdAt: number, id: number }
}

type LogsEb = ExpressionBuilder<Database, 'logs'>

const userColumns = [
  'logs.id', 'logs.user_id', 'logs.created_at', 'logs.type', 'logs.content', 'logs.token_name',
  'logs.model_name', 'logs.quota', 'logs.prompt_tokens', 'logs.completion_tokens', 'logs.use_time',
  'logs.is_stream', 'logs.group', 'logs.request_id'
] as const

const adminColumns = [
  ...userColumns, 'logs.username', 'logs.channel_id', 'logs.token_id', 'logs.ip', 'logs.other'
] as const

/** Every filter as one AND; empty strings and 0 mean "no filter", as in new-api. */
export function whereLogs (eb: LogsEb, f: LogFilter): Expression<SqlBool> {
  const and: Array<Expression<SqlBool>> = []
  if (f.userId !== undefined) and.push(eb('logs.user_id', '=', f.userId))
  if (f.tokenId !== undefined) and.push(eb('logs.token_id', '=', f.tokenId))
  if (f.type) and.push(eb('logs.type', '=', f.type))
  if (f.startTimestamp !== undefined) and.push(eb('logs.created_at', '>=', f.startTimestamp))
  if (f.endTimestamp !== undefined) and.push(eb('logs.created_at', '<=', f.endTimestamp))
  if (f.tokenName) and.push(eb('logs.token_name', '=', f.tokenName))
  if (f.modelName) and.push(eb('logs.model_name', '=', f.modelName))
  if (f.group) and.push(eb('logs.group', '=', f.group))
  // The second condition repeats the partial index's predicate, so that a generic plan of a
  // prepared statement (which cannot see that the parameter is not '') may use it.
  if (f.requestId) and.push(eb('logs.request_id', '=', f.requestId), eb('logs.request_id', '<>', ''))
  if (f.username) and.push(eb('logs.username', '=', f.username))
  if (f.channel) and.push(eb('logs.channel_id', '=', f.channel))
  return eb.and(and)
}

/** Filters besides the scope (user or key) and the window: a page must skip non-matching rows. */
function narrows (f: LogFilter): boolean {
  return Boolean(f.type || f.tokenName || f.modelName || f.group || f.requestId || f.username || f.channel)
}

/**
 * One page, newest first, as a query over `logs` to select columns from. An unfiltered first or
 * keyset page walks the index ((created_at, id), (user_id, created_at, id), (token_id, created_at,
 * id)) and fetches its rows directly. A filtered or deeper page picks its ids first (a deferred
 * join): the rows it skips are then index entries, tested against the columns the index carries
 * (the covering user index holds every /self filter; the admin filter indexes hold type), and only
 * the page's own rows are fetched.
 */
function pageQuery (db: Kysely<Database>, f: LogFilter, page: PageRequest) {
  const after = page.after
  const offset = after === undefined ? (page.page - 1) * page.pageSize : 0
  // A literal (1..100, validated): PostgreSQL estimates a parameter LIMIT at a tenth of the rows,
  // which makes the generic plan look dear, and it would plan every call.
  const limit = sql<number>`${sql.lit(page.pageSize)}`
  let ids = db.selectFrom('logs').where((eb) => whereLogs(eb, f))
  if (after !== undefined) {
    // A row comparison the btree walks directly: a page 5,000 deep costs what page 1 costs.
    ids = ids.where(({ eb, refTuple, tuple }) => eb(refTuple('logs.created_at', 'logs.id'), '<', tuple(after.createdAt, after.id)))
  }
  const rows = offset > 0 || narrows(f)
    ? db.selectFrom('logs').where('logs.id', 'in', ids.select('logs.id')
      .orderBy('logs.created_at', 'desc').orderBy('logs.id', 'desc').limit(limit).offset(offset))
    : ids
  return rows.orderBy('logs.created_at', 'desc').orderBy('logs.id', 'desc').limit(limit)
}

/** A page as a query a user may see, or as a statement of its own (listUserLogs). */
export function userPageQuery (db: Kysely<Database>, f: LogFilter, page: PageRequest): PageQuery<UserItem> {
  return pageQuery(db, f, page).select(userColumns)
}

export function adminPageQuery (db: Kysely<Database>, f: LogFilter, page: PageRequest): PageQuery<AdminItem> {
  return pageQuery(db, f, page)
    .leftJoin('channels', 'channels.id', 'logs.channel_id')
    .select(adminColumns)
    .select(sql<string>`coalesce(channels.name, '')`.as('channel_name'))
}

export type PageQuery<T> = SelectQueryBuilder<Database, any, T>

export async function listUserLogs (db: Kysely<Database>, f: LogFilter, page: PageRequest): Promise<UserItem[]> {
  return await userPageQuery(db, f, page).execute()
}

export async function listAdminLogs (db: Kysely<Database>, f: LogFilter, page: PageRequest): Promise<AdminItem[]> {
  return await adminPageQuery(db, f, page).execute()
}

/** Above this many matches a total that the rollups cannot answer is estimated, not counted. */
export const EXACT_COUNT_LIMIT = 10_000

export interface Total {
  total: number
  exact: boolean
}

/**
 * Filters the rollups can answer: a user, a type, a time window. Any other filter needs the rows
 * themselves.
 */
export function rollupAnswers (f: LogFilter): boolean {
  return f.tokenId === undefined && !narrows({ ...f, type: undefined })
}

const MINUTE = 60
const HOUR = 3600
const DAY = 86_400
const NO_END = Number.MAX_SAFE_INTEGER

export interface UnitRange { first: number, last: number }

/** How [start, end] splits into rows read from logs, fine and coarse rollup units, and delta minutes. */
export interface WindowPlan {
  raw: Array<{ start?: number, end?: number }>
  fine: UnitRange[]
  coarse: UnitRange | null
  delta: UnitRange | null
}

/**
 * Splits a window for the rollups: the whole coarse units inside it, the whole fine units beside
 * them at either end, and the seconds left over. Unit 0 of either grain is never used (integer
 * division also puts negative timestamps there): rows before the first fine unit are read raw.
 * With no end, the rollups run to the last unit there is and nothing is read after them.
 */
export function planWindow (start: number | undefined, end: number | undefined, fine: number, coarse: number): WindowPlan {
  const f1 = Math.max(1, start === undefined ? 1 : Math.ceil(start / fine))
  const f2 = end === undefined ? NO_END : Math.floor((end + 1) / fine) - 1
  if (f1 > f2) return { raw: [{ start, end }], fine: [], coarse: null, delta: null }

  const raw: WindowPlan['raw'] = [{ start, end: f1 * fine - 1 }]
  if (end !== undefined) raw.push({ start: (f2 + 1) * fine, end })
  const ratio = coarse / fine
  const c1 = Math.ceil(f1 / ratio)
  const c2 = f2 === NO_END ? NO_END : Math.floor((f2 + 1) / ratio) - 1
  const fineRanges: UnitRange[] = []
  let coarseRange: UnitRange | null = null
  if (c1 <= c2) {
    coarseRange = { first: c1, last: c2 }
    if (f1 <= c1 * ratio - 1) fineRanges.push({ first: f1, last: c1 * ratio - 1 })
    if (c2 !== NO_END && (c2 + 1) * ratio <= f2) fineRanges.push({ first: (c2 + 1) * ratio, last: f2 })
  } else {
    fineRanges.push({ first: f1, last: f2 })
  }
  const minutes = fine / MINUTE
  return { raw, fine: fineRanges, coarse: coarseRange, delta: { first: f1 * minutes, last: f2 === NO_END ? NO_END : (f2 + 1) * minutes - 1 } }
}

const sums = [sql<number>`sum(n)`.as('n'), sql<number>`sum(quota)`.as('quota')]

/** A unit or timestamp bound: a parameter, or a literal where it is the same for every request. */
type Bound = number | RawBuilder<number>

function rawSums (db: Kysely<Database>, f: LogFilter, start: Bound | undefined, end: Bound | undefined) {
  let query = db.selectFrom('logs')
    .where((eb) => whereLogs(eb, { ...f, startTimestamp: undefined, endTimestamp: undefined }))
    .select([sql<number>`count(*)`.as('n'), sql<number>`sum(logs.quota)`.as('quota')])
  if (start !== undefined) query = query.where('logs.created_at', '>=', start)
  if (end !== undefined) query = query.where('logs.created_at', '<=', end)
  return query
}

interface BoundRange { first: Bound, last: Bound }

function siteSums (db: Kysely<Database>, f: LogFilter, grain: 'minute' | 'hour', r: BoundRange) {
  if (grain === 'minute') {
    const minutes = db.selectFrom('logs_stat_minutely').select(sums).where('minute', '>=', r.first).where('minute', '<=', r.last)
    return f.type ? minutes.where('type', '=', f.type) : minutes
  }
  const hours = db.selectFrom('logs_stat_hourly').select(sums).where('hour', '>=', r.first).where('hour', '<=', r.last)
  return f.type ? hours.where('type', '=', f.type) : hours
}

function userSums (db: Kysely<Database>, f: LogFilter & { userId: number }, grain: 'hour' | 'day', r: BoundRange) {
  if (grain === 'hour') {
    const hours = db.selectFrom('logs_stat_hourly_user').select(sums).where('user_id', '=', f.userId).where('hour', '>=', r.first).where('hour', '<=', r.last)
    return f.type ? hours.where('type', '=', f.type) : hours
  }
  const days = db.selectFrom('logs_stat_daily_user').select(sums).where('user_id', '=', f.userId).where('day', '>=', r.first).where('day', '<=', r.last)
  return f.type ? days.where('type', '=', f.type) : days
}

function deltaSums (db: Kysely<Database>, f: LogFilter, r: BoundRange) {
  let query = db.selectFrom('logs_stat_delta').select(sums).where('minute', '>=', r.first).where('minute', '<=', r.last)
  if (f.type) query = query.where('type', '=', f.type)
  if (f.userId !== undefined) query = query.where('user_id', '=', f.userId)
  return query
}

/**
 * Exact row count and quota sum for filters the rollups answer, in one statement (one snapshot):
 * the site's hours and minutes, or a user's days and hours, from the rollups; the deltas not
 * folded yet; and from logs only the seconds (site) or minutes (user) at the ragged ends, through
 * (type, created_at) or the covering (user_id, created_at, id) index. A 30-day window reads at most
 * ~840 site rollup rows or ~80 per type for a user, and at most two partial units of log rows.
 */
export async function exactSums (db: Kysely<Database>, f: LogFilter): Promise<{ n: number, quota: number }> {
  return await exactSumsQuery(db, f).executeTakeFirstOrThrow()
}

function exactSumsQuery (db: Kysely<Database>, f: LogFilter) {
  const userId = f.userId
  const plan = userId === undefined ? planWindow(f.startTimestamp, f.endTimestamp, MINUTE, HOUR) : planWindow(f.startTimestamp, f.endTimestamp, HOUR, DAY)
  // Without a window every bound is the same for every request: as literals, the statement's
  // generic plan costs what a custom one does, so PostgreSQL keeps it and plans it no more.
  // As parameters it planned every call, and the plan of `created_at <= 3599` asks the
  // (created_at, id) index for its actual minimum: after a purge, until a vacuum, a walk over
  // millions of dead entries (120 ms of planning a request, bench/RESULTS.md).
  const literal = f.startTimestamp === undefined && f.endTimestamp === undefined
  const b = (v: number | undefined): Bound | undefined => v === undefined || !literal ? v : sql<number>`${sql.lit(v)}`
  const range = (r: UnitRange): BoundRange => ({ first: b(r.first)!, last: b(r.last)! })
  const [first, ...rest] = plan.raw
  let parts = rawSums(db, f, b(first?.start), b(first?.end))
  for (const r of rest) parts = parts.unionAll(rawSums(db, f, b(r.start), b(r.end)))
  for (const r of plan.fine) parts = parts.unionAll(userId === undefined ? siteSums(db, f, 'minute', range(r)) : userSums(db, { ...f, userId }, 'hour', range(r)))
  if (plan.coarse !== null) parts = parts.unionAll(userId === undefined ? siteSums(db, f, 'hour', range(plan.coarse)) : userSums(db, { ...f, userId }, 'day', range(plan.coarse)))
  if (plan.delta !== null) parts = parts.unionAll(deltaSums(db, f, range(plan.delta)))
  return db.selectFrom(parts.as('parts'))
    .select([sql<number>`coalesce(sum(n), 0)::int8`.as('n'), sql<number>`coalesce(sum(quota), 0)::int8`.as('quota')])
}

/**
 * The list's total: exact from the rollups where they answer; else an exact count up to
 * EXACT_COUNT_LIMIT matches (an index scan that stops there) and, beyond it, the planner's
 * estimate, flagged as such.
 */
export async function countLogs (db: Kysely<Database>, f: LogFilter): Promise<Total> {
  if (rollupAnswers(f)) return { total: (await exactSums(db, f)).n, exact: true }
  return await totalOf(db, f, await cappedCount(db, f))
}

function matchingRows (db: Kysely<Database>, f: LogFilter) {
  return db.selectFrom('logs').select(sql<number>`1`.as('one')).where((eb) => whereLogs(eb, f))
}

/** Matches counted up to EXACT_COUNT_LIMIT + 1. */
async function cappedCount (db: Kysely<Database>, f: LogFilter): Promise<number> {
  const capped = await db.selectFrom(matchingRows(db, f).limit(EXACT_COUNT_LIMIT + 1).as('m'))
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(capped.n)
}

/** A capped count as the total: itself up to EXACT_COUNT_LIMIT, beyond it the planner's estimate, flagged. */
async function totalOf (db: Kysely<Database>, f: LogFilter, n: number): Promise<Total> {
  if (n <= EXACT_COUNT_LIMIT) return { total: n, exact: true }
  const compiled = matchingRows(db, f).compile()
  const explain = await db.executeQuery<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(
    CompiledQuery.raw(`explain (format json) ${compiled.sql}`, [...compiled.parameters])
  )
  const estimate = explain.rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows'] ?? 0
  return { total: Math.max(Math.round(estimate), EXACT_COUNT_LIMIT + 1), exact: false }
}

/** Filters the multi-column GIN index (idx_logs_filters_gin) holds. */
function ginKeys (f: LogFilter): number {
  return [f.userId !== undefined, f.modelName, f.username, f.tokenName, f.channel, f.group].filter(Boolean).length
}

/** Up to this many matches, a page is their bitmap sorted; beyond it, a walk in list order. */
export const BITMAP_PAGE_LIMIT = 2000

/** Index entries of a user's rows a count may walk rather than intersect the GIN index. */
export const WALK_COUNT_BUDGET = 100_000

/** The newest rows in scope a filtered list looks at first, to learn how dense its matches are. */
export const PROBE_ROWS = 2000

/**
 * A page and its total. Two or more of the columns the GIN index holds (a channel and a model, a
 * user and a group…) can match few rows or none although each matches hundreds of thousands, and
 * no btree holds both: walking one in list order until the page is full would read all of its
 * rows (seconds at 10M rows). And where they do match densely (a user and their own key), the
 * planner, which takes the columns for independent, expects a handful and sorts the bitmap of all
 * of them instead of walking. So such a list first reads the newest PROBE_ROWS rows of its scope
 * (the user and the window; index-only for a user), and then, with the plan's shape set for the
 * transaction:
 * - that was the whole scope: it counted the matches exactly, and the page is a short walk;
 * - the matches are dense enough to extrapolate (over the exact size of the scope, from the
 *   rollups) well beyond EXACT_COUNT_LIMIT: the walk finds the page at once, and the total is
 *   that extrapolation, flagged as an estimate;
 * - a user's matches, where walking the user's index to count them reads fewer than
 *   WALK_COUNT_BUDGET entries: that walk, then the page's;
 * - else they are counted by intersecting the GIN index's entries: none, no page query; a few,
 *   their bitmap sorted; more, the walk.
 * Other filters: the page and the total at once, as the planner sees fit.
 */
export async function pageWithTotal<T extends object> (
  db: Kysely<Database>, f: LogFilter, page: PageRequest,
  query: (db: Kysely<Database>, f: LogFilter, page: PageRequest) => PageQuery<T>
): Promise<{ items: T[], total: Total }> {
  const list = async (db: Kysely<Database>, f: LogFilter, page: PageRequest) => await query(db, f, page).execute()
  if (!narrows(f) && f.tokenId === undefined) {
    // The page and its total from the rollups in one statement: a round trip, and the socket
    // writes that go with it, saved on the most common list of all (bench/RESULTS.md).
    const { rows } = await sql<T & { created_at: number | null, total_n: number }>`
      select p.*, t.n as total_n from (${exactSumsQuery(db, f)}) t
      left join lateral (${query(db, f, page)}) p on true
      order by p.created_at desc, p.id desc`.execute(db)
    const total = { total: rows[0]?.total_n ?? 0, exact: true }
    if (rows[0]?.created_at == null) return { items: [], total }
    return { items: rows.map(({ total_n: _, ...item }) => item as unknown as T), total }
  }
  if (ginKeys(f) < 2) {
    const [items, total] = await Promise.all([list(db, f, page), countLogs(db, f)])
    return { items, total }
  }
  const offset = page.after === undefined ? (page.page - 1) * page.pageSize : 0
  const pageOf = async (trx: Kysely<Database>, matches: number) => page.after === undefined && offset >= matches ? [] : await list(trx, f, page)
  const scope: LogFilter = { userId: f.userId, startTimestamp: f.startTimestamp, endTimestamp: f.endTimestamp }
  return await db.transaction().execute(async (trx) => {
    const probe = await trx.selectFrom(
      trx.selectFrom('logs').where((eb) => whereLogs(eb, scope))
        .select((eb) => sql<boolean>`${whereLogs(eb, { ...f, ...UNSCOPED })}`.as('hit'))
        .orderBy('logs.created_at', 'desc').orderBy('logs.id', 'desc').limit(PROBE_ROWS).as('p'))
      .select([sql<string>`count(*)`.as('seen'), sql<string>`count(*) filter (where hit)`.as('hits')])
      .executeTakeFirstOrThrow()
    const [seen, hits] = [Number(probe.seen), Number(probe.hits)]
    if (seen < PROBE_ROWS) {
      await planShape(trx, 'walk')
      return { items: await pageOf(trx, hits), total: { total: hits, exact: true } }
    }
    const scopeRows = (await exactSums(trx, scope)).n
    const estimate = hits / seen * scopeRows
    if (estimate > 2 * EXACT_COUNT_LIMIT) {
      await planShape(trx, 'walk')
      return { items: await list(trx, f, page), total: { total: Math.round(estimate), exact: false } }
    }
    // A user's index holds every column a user filters on: counting by walking it reads index
    // entries only, fewer than the GIN intersection touches unless the user has very many rows.
    if (f.userId !== undefined && Math.min(scopeRows, (EXACT_COUNT_LIMIT + 1) * seen / Math.max(hits, 1)) <= WALK_COUNT_BUDGET) {
      await planShape(trx, 'walk')
      const n = await cappedCount(trx, f)
      return { items: await pageOf(trx, n), total: await totalOf(trx, f, n) }
    }
    await planShape(trx, 'bitmap')
    const n = await cappedCount(trx, f)
    if (n <= BITMAP_PAGE_LIMIT) return { items: await pageOf(trx, n), total: { total: n, exact: true } }
    await planShape(trx, 'walk')
    return { items: await list(trx, f, page), total: await totalOf(trx, f, n) }
  })
}

/**
 * For the rest of the transaction (SET LOCAL): 'walk' reads an index in list order (no bitmap
 * scans), 'bitmap' only bitmap scans (the GIN intersection, then a sort).
 */
async function planShape (trx: Kysely<Database>, shape: 'walk' | 'bitmap'): Promise<void> {
  const [walk, bitmap] = shape === 'walk' ? ['on', 'off'] : ['off', 'on']
  await sql`select set_config('enable_bitmapscan', ${bitmap}, true), set_config('enable_indexscan', ${walk}, true),
    set_config('enable_indexonlyscan', ${walk}, true), set_config('enable_seqscan', ${walk}, true)`.execute(trx)
}

/** A filter without its scope (user and window), for what the probe tests row by row. */
const UNSCOPED = { userId: undefined, startTimestamp: undefined, endTimestamp: undefined }

export interface LogStat {
  quota: number
  rpm: number
  tpm: number
}

/**
 * quota over [start, end]; rpm and tpm over the last 60 seconds with the same filters but no
 * window. Two explicit aggregates (new-api scans both into one struct and loses quota, #7106).
 */
export async function statLogs (db: Kysely<Database>, f: LogFilter, nowSeconds: number): Promise<LogStat> {
  const recent = { ...f, startTimestamp: nowSeconds - 60, endTimestamp: undefined }
  const [quota, recentRow] = await Promise.all([
    rollupAnswers(f)
      ? exactSums(db, f).then((sums) => sums.quota)
      : db.selectFrom('logs')
        .select(sql<number>`coalesce(sum(logs.quota), 0)::int8`.as('quota'))
        .where((eb) => whereLogs(eb, f))
        .executeTakeFirstOrThrow()
        .then((row) => row.quota),
    db.selectFrom('logs')
      .select((eb) => eb.fn.countAll<number>().as('rpm'))
      .select(sql<number>`coalesce(sum(logs.prompt_tokens::int8 + logs.completion_tokens), 0)::int8`.as('tpm'))
      .where((eb) => whereLogs(eb, recent))
      .executeTakeFirstOrThrow()
  ])
  return { quota, rpm: recentRow.rpm, tpm: recentRow.tpm }
}

export interface SearchRequest {
  keyword: string
  userId?: number
  limit: number
  /** rows a keyword without a trigram is matched against; SHORT_KEYWORD_WINDOW unless given */
  shortKeywordWindow?: number
}

/** `%`, `_` and `\` as plain characters in a LIKE pattern (PostgreSQL's default escape is `\`). */
export function escapeLike (value: string): string {
  return value.replace(/[\\%_]/g, (c) => '\\' + c)
}

/**
 * Whether pg_trgm can serve `%keyword%`: it needs a run of three word characters (letters,
 * digits, CJK…). A shorter keyword ("a", "超时" is two) has no trigram to look up.
 */
export function trigramSearchable (keyword: string): boolean {
  return /[\p{L}\p{N}]{3}/u.test(keyword)
}

/**
 * How many of the newest rows in scope a keyword without a trigram is matched against. Such a
 * keyword can only be found by reading rows; a rare one would otherwise read the whole table
 * (seconds at 10M rows) and hit the statement timeout. Documented on the search routes.
 */
export const SHORT_KEYWORD_WINDOW = 100_000

function searchCondition (db: Kysely<Database>, eb: LogsEb, s: SearchRequest): Expression<SqlBool> {
  // Served by the pg_trgm GIN index on content; ILIKE folds case.
  const contentMatch = eb('logs.content', 'ilike', `%${escapeLike(s.keyword)}%`)
  const typeValue = /^[0-9]{1,9}$/.test(s.keyword) ? Number(s.keyword) : undefined
  const match = typeValue === undefined ? contentMatch : eb.or([contentMatch, eb('logs.type', '=', typeValue)])
  const scope: Array<Expression<SqlBool>> = s.userId === undefined ? [] : [eb('logs.user_id', '=', s.userId)]
  if (!trigramSearchable(s.keyword)) {
    // The newest rows in scope, through (created_at, id) or (user_id, created_at, id), index only.
    let recent = db.selectFrom('logs as recent').select('recent.id')
    if (s.userId !== undefined) recent = recent.where('recent.user_id', '=', s.userId)
    scope.push(eb('logs.id', 'in', recent.orderBy('recent.created_at', 'desc').orderBy('recent.id', 'desc').limit(s.shortKeywordWindow ?? SHORT_KEYWORD_WINDOW)))
  }
  return eb.and([...scope, match])
}

export async function searchUserLogs (db: Kysely<Database>, s: SearchRequest): Promise<UserItem[]> {
  return await db.selectFrom('logs')
    .select(userColumns)
    .where((eb) => searchCondition(db, eb, s))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .limit(s.limit)
    .execute()
}

export async function searchAdminLogs (db: Kysely<Database>, s: SearchRequest): Promise<AdminItem[]> {
  return await db.selectFrom('logs')
    .leftJoin('channels', 'channels.id', 'logs.channel_id')
    .select(adminColumns)
    .select(sql<string>`coalesce(channels.name, '')`.as('channel_name'))
    .where((eb) => searchCondition(db, eb, s))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .limit(s.limit)
    .execute()
}
