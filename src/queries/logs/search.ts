import { type Expression, type Kysely, type SqlBool } from 'kysely'
import { plannedPerCall } from '../../db/plan.js'
import type { Database } from '../../db/types.js'
import type { AdminItem, UserItem } from '../../schemas/log.js'
import type { LogsEb } from './filter.js'
import { adminColumns, channelName, userColumns } from './page.js'

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

/**
 * The newest matches. Planned per call: a rare keyword wants the trigram index, a common one a
 * walk of the newest rows, and only the pattern itself tells which.
 */
function newestMatches (db: Kysely<Database>, s: SearchRequest) {
  return db.selectFrom('logs')
    .where((eb) => searchCondition(db, eb, s))
    .orderBy('logs.created_at', 'desc')
    .orderBy('logs.id', 'desc')
    .limit(s.limit)
    .withPlugin(plannedPerCall)
}

export async function searchUserLogs (db: Kysely<Database>, s: SearchRequest): Promise<UserItem[]> {
  return await newestMatches(db, s).select(userColumns).execute()
}

export async function searchAdminLogs (db: Kysely<Database>, s: SearchRequest): Promise<AdminItem[]> {
  return await newestMatches(db, s)
    .leftJoin('channels', 'channels.id', 'logs.channel_id')
    .select(adminColumns)
    .select(channelName)
    .execute()
}
