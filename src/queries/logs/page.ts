import { sql, type Kysely, type SelectQueryBuilder } from 'kysely'
import type { Database } from '../../db/types.js'
import type { CursorPosition } from '../../lib/cursor.js'
import type { AdminItem, UserItem } from '../../schemas/log.js'
import { narrows, planFor, whereLogs, type LogFilter } from './filter.js'

// One page of logs, newest first, in the columns a user or an admin may see.

export interface PageRequest {
  page: number
  pageSize: number
  /** keyset position: rows strictly older than this (created_at, id); the page number is then ignored */
  after?: CursorPosition
}

export type PageQuery<T> = SelectQueryBuilder<Database, any, T>

/** Builds a page as a query to execute alone or to embed (the list with its total). */
export type PageBuilder<T> = (db: Kysely<Database>, f: LogFilter, page: PageRequest) => PageQuery<T>

/** The columns of a row a user may see (schemas/log.ts's UserItem). */
export const userColumns = [
  'logs.id', 'logs.user_id', 'logs.created_at', 'logs.type', 'logs.content', 'logs.token_name',
  'logs.model_name', 'logs.quota', 'logs.prompt_tokens', 'logs.completion_tokens', 'logs.use_time',
  'logs.is_stream', 'logs.group', 'logs.request_id'
] as const

/** Every column, for admins; with channelName beside them (AdminItem). */
export const adminColumns = [
  ...userColumns, 'logs.username', 'logs.channel_id', 'logs.token_id', 'logs.ip', 'logs.other'
] as const

/** The rows of how many pages lie before this one. */
export function pageOffset (page: PageRequest): number {
  return page.after === undefined ? (page.page - 1) * page.pageSize : 0
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
  const offset = pageOffset(page)
  // A literal (1..1000, validated): PostgreSQL estimates a parameter LIMIT at a tenth of the rows,
  // which makes the generic plan look dear, and it would plan every call (bench/RESULTS.md, run I).
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

/** The channel's name from the joined channels row; empty when the channel is unknown. */
export const channelName = sql<string>`coalesce(channels.name, '')`.as('channel_name')

export const userPageQuery: PageBuilder<UserItem> = (db, f, page) => pageQuery(db, f, page).select(userColumns)

export const adminPageQuery: PageBuilder<AdminItem> = (db, f, page) => pageQuery(db, f, page)
  .leftJoin('channels', 'channels.id', 'logs.channel_id')
  .select(adminColumns)
  .select(channelName)

/** A page builder and the name its prepared statements go by. */
export interface PageShape<T> {
  build: PageBuilder<T>
  label: string
}

export const userPage: PageShape<UserItem> = { build: userPageQuery, label: 'user-page' }
export const adminPage: PageShape<AdminItem> = { build: adminPageQuery, label: 'admin-page' }

/** The page alone, as a statement of its own. */
export async function listPage<T> (db: Kysely<Database>, f: LogFilter, page: PageRequest, shape: PageShape<T>): Promise<T[]> {
  return await shape.build(db, f, page).withPlugin(planFor(f, shape.label)).execute()
}

export async function listUserLogs (db: Kysely<Database>, f: LogFilter, page: PageRequest): Promise<UserItem[]> {
  return await listPage(db, f, page, userPage)
}

export async function listAdminLogs (db: Kysely<Database>, f: LogFilter, page: PageRequest): Promise<AdminItem[]> {
  return await listPage(db, f, page, adminPage)
}
