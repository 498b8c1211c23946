import { sql, type Expression, type Kysely, type SqlBool } from 'kysely'
import { plannedPerCall } from '../../db/plan.js'
import type { Database } from '../../db/types.js'
import type { AdminItem, UserItem } from '../../schemas/log.js'
import type { LogsEb } from './filter.js'
import { adminColumns, channelName, userColumns } from './page.js'

export interface SearchRequest {
  keyword: string
  userId?: number
  limit: number
  /** how a keyword without a trigram is searched; SHORT_KEYWORD_SCAN unless given */
  scan?: ShortKeywordScan
}

/**
 * A keyword without a trigram cannot use the index: the rows in scope are read newest first, in
 * chunks growing to `chunkRows` (each chunk a statement of its own, so no statement timeout cuts
 * a deep search), until `limit` matches are found, the rows run out, or `budgetMs` has passed
 * since the first chunk began. 0 = one chunk.
 */
export interface ShortKeywordScan {
  chunkRows: number
  budgetMs: number
}

const FIRST_CHUNK_ROWS = 1000

/** Measured at 10M rows in bench/RESULTS.md (issue 10). */
export const SHORT_KEYWORD_SCAN: ShortKeywordScan = { chunkRows: 100_000, budgetMs: 2000 }

export interface SearchResult<T> {
  items: T[]
  /** false when a short keyword's scan ran out of budget before it had read every row in scope */
  complete: boolean
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
 * The type an integer keyword also matches: decimal digits (leading zeros too) with an optional
 * minus sign, within the int4 range of logs.type; anything else matches content only.
 */
export function typeKeyword (keyword: string): number | undefined {
  if (!/^-?[0-9]+$/.test(keyword)) return undefined
  const value = Number(keyword)
  return value >= -2_147_483_648 && value <= 2_147_483_647 ? value : undefined
}

/** (created_at, id): a position in the routes' order. */
type Position = readonly [number, number]

/** Rows of a chunk: below `before` (or from the newest) down to `from` inclusive (or to the oldest). */
interface Range { before: Position | null, from: Position | null }

function searchCondition (eb: LogsEb, s: SearchRequest, range: Range | null): Expression<SqlBool> {
  // Served by the pg_trgm GIN index on content; ILIKE folds case. In a chunk, `content || ''`
  // keeps the planner off that index: with no trigram to look up, a GIN scan reads the whole
  // index (seconds at 10M rows) where the chunk's range is 100,000 index entries
  // (bench/RESULTS.md, short keywords).
  const pattern = `%${escapeLike(s.keyword)}%`
  const contentMatch = range === null ? eb('logs.content', 'ilike', pattern) : eb(sql<string>`${sql.ref('logs.content')} || ''`, 'ilike', pattern)
  const typeValue = typeKeyword(s.keyword)
  const match = typeValue === undefined ? contentMatch : eb.or([contentMatch, eb('logs.type', '=', typeValue)])
  const where: Array<Expression<SqlBool>> = s.userId === undefined ? [] : [eb('logs.user_id', '=', s.userId)]
  // The plain created_at bounds beside the row comparisons give the planner a row estimate; it
  // has none for a row comparison.
  const position = eb.refTuple('logs.created_at', 'logs.id')
  if (range?.before != null) where.push(eb('logs.created_at', '<=', range.before[0]), eb(position, '<', eb.tuple(...range.before)))
  if (range?.from != null) where.push(eb('logs.created_at', '>=', range.from[0]), eb(position, '>=', eb.tuple(...range.from)))
  return eb.and([...where, match])
}

/**
 * The newest matches, in one range. Planned per call: a rare keyword wants the trigram index, a
 * common one a walk of the newest rows, and only the pattern itself tells which.
 */
function newestMatches (db: Kysely<Database>, s: SearchRequest, range: Range | null, limit: number) {
  return db.selectFrom('logs')
    .where((eb) => searchCondition(eb, s, range))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .limit(limit)
    .withPlugin(plannedPerCall)
}

/**
 * Where a chunk of `rows` rows in scope, below `before`, ends: the position of its oldest row, or
 * null when fewer rows are left. An index-only walk of (created_at, id) or (user_id, created_at, id).
 */
async function chunkEnd (db: Kysely<Database>, s: SearchRequest, before: Position | null, rows: number): Promise<Position | null> {
  let q = db.selectFrom('logs').select(['logs.created_at', 'logs.id'])
  if (s.userId !== undefined) q = q.where('logs.user_id', '=', s.userId)
  if (before !== null) q = q.where((eb) => eb(eb.refTuple('logs.created_at', 'logs.id'), '<', eb.tuple(...before)))
  const row = await q.orderBy('logs.created_at', 'desc').orderBy('logs.id', 'desc').offset(rows - 1).limit(1).executeTakeFirst()
  return row === undefined ? null : [row.created_at, row.id]
}

type Select<T> = (q: ReturnType<typeof newestMatches>) => Promise<T[]>

async function search<T> (db: Kysely<Database>, s: SearchRequest, select: Select<T>): Promise<SearchResult<T>> {
  if (trigramSearchable(s.keyword)) return { items: await select(newestMatches(db, s, null, s.limit)), complete: true }
  const scan = s.scan ?? SHORT_KEYWORD_SCAN
  const deadline = Date.now() + scan.budgetMs
  const items: T[] = []
  let before: Position | null = null
  // Chunks grow from FIRST_CHUNK_ROWS to chunkRows: a common keyword fills its 100 in the first
  // thousand rows, and measuring out 100,000 first cost it 10 to 200 times the search itself.
  for (let rows = Math.min(FIRST_CHUNK_ROWS, scan.chunkRows); ; rows = Math.min(rows * 4, scan.chunkRows)) {
    const from = await chunkEnd(db, s, before, rows)
    items.push(...await select(newestMatches(db, s, { before, from }, s.limit - items.length)))
    if (items.length >= s.limit || from === null) return { items, complete: true }
    if (Date.now() >= deadline) return { items, complete: false }
    before = from
  }
}

export async function searchUserLogs (db: Kysely<Database>, s: SearchRequest): Promise<SearchResult<UserItem>> {
  return await search(db, s, async (q) => await q.select(userColumns).execute())
}

export async function searchAdminLogs (db: Kysely<Database>, s: SearchRequest): Promise<SearchResult<AdminItem>> {
  return await search(db, s, async (q) => await q
    .leftJoin('channels', 'channels.id', 'logs.channel_id')
    .select(adminColumns)
    .select(channelName)
    .execute())
}
