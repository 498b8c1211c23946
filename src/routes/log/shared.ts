import { Type } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import type { SearchResult, ShortKeywordScan } from '../../queries/logs/search.js'

export const SEARCH_LIMIT = 100

export interface SearchRoutesOptions {
  /** how a keyword without a trigram is searched (SEARCH_SCAN_CHUNK_ROWS, SEARCH_SCAN_BUDGET_MS) */
  searchScan: ShortKeywordScan
}

/** Declared on the search routes' 200 answers. */
export const searchHeaders = {
  // An enum, not literals: OpenAPI 3.0 has no `const`.
  'X-Search-Complete': Type.Unsafe<'true' | 'false'>({
    type: 'string',
    enum: ['true', 'false'],
    example: 'true',
    description: 'false when a short keyword\'s time budget ran out before every row in scope was read: older matches may exist'
  })
}

/** The items of a search, and whether it read everything, for the client to see. */
export function searchAnswer<T> (reply: FastifyReply, result: SearchResult<T>): T[] {
  reply.header('x-search-complete', String(result.complete))
  return result.items
}

// OpenAPI security requirements (the schemes are declared in plugins/openapi.ts).
export const userSecurity: Array<Record<string, string[]>> = [{ accessToken: [], newApiUser: [] }]
// The key as Authorization, or (the empty requirement) as the route's own `key` query parameter.
export const apiKeySecurity: Array<Record<string, string[]>> = [{ apiKeyHeader: [] }, {}]
