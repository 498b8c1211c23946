import type { FastifyRequest } from 'fastify'
import { BadParameterError } from '../../errors.js'
import type { LogFilter } from '../../queries/logs/filter.js'
import type { PageRequest } from '../../queries/logs/page.js'
import type { Total } from '../../queries/logs/total.js'
import type { AuthUser } from '../../queries/auth.js'
import { decodeCursor, encodeCursor } from '../../lib/cursor.js'

interface FilterQuery {
  type?: number
  start_timestamp?: number
  end_timestamp?: number
  token_name?: string
  model_name?: string
  group?: string
  request_id?: string
  username?: string
  channel?: number
}

/** Query string → query filter; the 400 for a window that ends before it starts. */
export function toFilter (q: FilterQuery): LogFilter {
  if (q.start_timestamp !== undefined && q.end_timestamp !== undefined && q.start_timestamp > q.end_timestamp) {
    throw new BadParameterError('start_timestamp must not be after end_timestamp')
  }
  return {
    type: q.type,
    startTimestamp: q.start_timestamp,
    endTimestamp: q.end_timestamp,
    tokenName: q.token_name,
    modelName: q.model_name,
    group: q.group,
    requestId: q.request_id,
    username: q.username,
    channel: q.channel
  }
}

export function toPage (q: { p?: number, page_size?: number, cursor?: string }, defaultSize: number): PageRequest {
  const page = { page: q.p ?? 1, pageSize: q.page_size ?? defaultSize }
  return q.cursor === undefined || q.cursor === '' ? page : { ...page, after: decodeCursor(q.cursor) }
}

/** The data of a list response: the page, its total and the cursor of the next page. */
export function pageData<T extends { created_at: number, id: number }> (items: T[], total: Total, page: PageRequest) {
  const last = items.at(-1)
  return {
    items,
    total: total.total,
    total_exact: total.exact,
    page: page.page,
    page_size: page.pageSize,
    next_cursor: last !== undefined && items.length === page.pageSize ? encodeCursor(last) : null
  }
}

const MAX_KEYWORD = 128

/** Trimmed keyword of 1..128 characters (code points, so a CJK keyword counts as it reads). */
export function toKeyword (raw: string): string {
  const keyword = raw.trim()
  if (keyword === '') throw new BadParameterError('keyword is required')
  if ([...keyword].length > MAX_KEYWORD) throw new BadParameterError(`keyword must be at most ${MAX_KEYWORD} characters`)
  return keyword
}

/** The authenticated user; the scope's onRequest hook guarantees one. */
export function currentUser (request: FastifyRequest): AuthUser {
  if (request.user === null) throw new Error('route reached without authentication')
  return request.user
}

export const ok = <T>(data: T) => ({ success: true as const, message: '', data })
