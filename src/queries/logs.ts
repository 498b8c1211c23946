import { sql, type ExpressionBuilder, type Expression, type SqlBool, type Kysely } from 'kysely'
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
  if (f.requestId) and.push(eb('logs.request_id', '=', f.requestId))
  if (f.username) and.push(eb('logs.username', '=', f.username))
  if (f.channel) and.push(eb('logs.channel_id', '=', f.channel))
  return eb.and(and)
}

/**
 * Ids of one page, newest first. Deferred join: the page's ids come from an index-only walk
 * ((created_at, id), (user_id, created_at, id) or (token_id, created_at, id)), so an OFFSET skips
 * index entries rather than whole heap rows, and only the rows of the page are fetched.
 */
function pageIds (db: Kysely<Database>, f: LogFilter, page: PageRequest) {
  return db.selectFrom('logs')
    .select('logs.id')
    .where((eb) => whereLogs(eb, f))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .limit(page.pageSize)
    .offset((page.page - 1) * page.pageSize)
}

export async function listUserLogs (db: Kysely<Database>, f: LogFilter, page: PageRequest): Promise<UserItem[]> {
  return await db.selectFrom('logs')
    .innerJoin(pageIds(db, f, page).as('page'), 'page.id', 'logs.id')
    .select(userColumns)
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .execute()
}

export async function listAdminLogs (db: Kysely<Database>, f: LogFilter, page: PageRequest): Promise<AdminItem[]> {
  return await db.selectFrom('logs')
    .innerJoin(pageIds(db, f, page).as('page'), 'page.id', 'logs.id')
    .leftJoin('channels', 'channels.id', 'logs.channel_id')
    .select(adminColumns)
    .select(sql<string>`coalesce(channels.name, '')`.as('channel_name'))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .execute()
}

export async function countLogs (db: Kysely<Database>, f: LogFilter): Promise<number> {
  const row = await db.selectFrom('logs')
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .where((eb) => whereLogs(eb, f))
    .executeTakeFirstOrThrow()
  return row.total
}

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
  const [quotaRow, recentRow] = await Promise.all([
    db.selectFrom('logs')
      .select(sql<number>`coalesce(sum(logs.quota), 0)::int8`.as('quota'))
      .where((eb) => whereLogs(eb, f))
      .executeTakeFirstOrThrow(),
    db.selectFrom('logs')
      .select((eb) => eb.fn.countAll<number>().as('rpm'))
      .select(sql<number>`coalesce(sum(logs.prompt_tokens::int8 + logs.completion_tokens), 0)::int8`.as('tpm'))
      .where((eb) => whereLogs(eb, recent))
      .executeTakeFirstOrThrow()
  ])
  return { quota: quotaRow.quota, rpm: recentRow.rpm, tpm: recentRow.tpm }
}

export interface SearchRequest {
  keyword: string
  userId?: number
  limit: number
}

/** `%`, `_` and `\` as plain characters in a LIKE pattern (PostgreSQL's default escape is `\`). */
export function escapeLike (value: string): string {
  return value.replace(/[\\%_]/g, (c) => '\\' + c)
}

function searchCondition (eb: LogsEb, s: SearchRequest): Expression<SqlBool> {
  // Served by the pg_trgm GIN index on content; ILIKE folds case.
  const contentMatch = eb('logs.content', 'ilike', `%${escapeLike(s.keyword)}%`)
  const typeValue = /^[0-9]{1,9}$/.test(s.keyword) ? Number(s.keyword) : undefined
  const match = typeValue === undefined ? contentMatch : eb.or([contentMatch, eb('logs.type', '=', typeValue)])
  return s.userId === undefined ? match : eb.and([eb('logs.user_id', '=', s.userId), match])
}

export async function searchUserLogs (db: Kysely<Database>, s: SearchRequest): Promise<UserItem[]> {
  return await db.selectFrom('logs')
    .select(userColumns)
    .where((eb) => searchCondition(eb, s))
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
    .where((eb) => searchCondition(eb, s))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .limit(s.limit)
    .execute()
}
