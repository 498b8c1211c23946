import { SHORT_KEYWORD_WINDOW } from '../../queries/logs/search.js'
import { COUNT_LIMITS } from '../../queries/logs/count-strategy.js'

// The OpenAPI descriptions of the log operations: what a client generated from the document needs
// to know that the schemas alone do not say. Shared pieces are written once.

const paging = 'Paging: `p` (1-based) and `page_size`, or `cursor`: pass the previous page\'s `next_cursor` to page by keyset, ' +
  'as fast thousands of pages deep as on page 1 (`p` is then ignored); `next_cursor` is null on the last page.'

const total = '`total` counts every matching row. It is exact (`total_exact: true`) for the scope, type and window alone, and for ' +
  `other filters up to ${COUNT_LIMITS.exactCountLimit.toLocaleString('en-US')} matches; beyond that it is the database's estimate and \`total_exact\` is false.`

const filters = 'Filters combine with AND; an empty string or 0 means no filter; `start_timestamp` and `end_timestamp` are unix seconds, both inclusive.'

const stat = '`quota` sums the matching rows over the window; `rpm` and `tpm` count the rows and their tokens over the last 60 seconds ' +
  '(same filters, window ignored). `type` defaults to 2 (consume); 0 means every type.'

const search = 'The 100 newest rows whose content contains the keyword, case-insensitively and literally (`%` and `_` are plain ' +
  'characters), or whose type equals it when it is an integer. A keyword without three letters or digits in a row is matched ' +
  `against the newest ${SHORT_KEYWORD_WINDOW.toLocaleString('en-US')} rows in scope only.`

export const descriptions = {
  listLogs: `Every log row of the site, newest first, with the admin fields (channel, ip, other…). ${paging} ${total} ${filters}`,
  getLogStat: `Totals over every log row. ${stat} ${filters}`,
  searchLogs: `${search} Over every log row of the site.`,
  deleteHistoryLogs: 'Deletes every log row with `created_at` below `target_timestamp`, oldest first, in batches that each commit ' +
    '(whole UTC days, then hours, then rows), keeping totals and stats exact throughout. One purge runs at a time across every ' +
    'instance: a second one answers 409. The purge finishes even if the client goes away. Answers the number of rows deleted.',
  listSelfLogs: `The caller's own rows, newest first, with the user fields only. ${paging} ${total} ${filters}`,
  getSelfLogStat: `Totals over the caller's own rows. ${stat} ${filters}`,
  searchSelfLogs: `${search} Over the caller's own rows only.`,
  listTokenLogs: 'The rows written with one API key, newest first, with the user fields only. Public and cross-origin (CORS): the key ' +
    'authenticates, preferably as `Authorization: Bearer sk-…` (the `key` query parameter also works, but lands in access logs). ' +
    'Rate limited per client IP: above the limit it answers 429 with `Retry-After`. An unknown, deleted or disabled key, or a ' +
    'disabled owner, answers 401 (`Token不存在或无权限`); expired and exhausted keys still see their logs.',
  healthz: 'Answers 200 while the service runs and its database answers a query, 503 otherwise. Needs no credentials.'
} as const
