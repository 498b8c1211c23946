import { SHORT_KEYWORD_SCAN } from '../../queries/logs/search.js'
import { COUNT_LIMITS } from '../../queries/logs/count-strategy.js'

// The OpenAPI descriptions of the log operations: what a client generated from the document needs
// to know that the schemas alone do not say. Shared pieces are written once.

const paging = 'Paging: `p` (1-based) and `page_size`, or `cursor`: pass the previous page\'s `next_cursor` to page by keyset, ' +
  'as fast thousands of pages deep as on page 1 (`p` is then ignored); `next_cursor` is null once a page is not full (after a full last page, the next page is empty).'

const total = '`total` counts every matching row. It is exact (`total_exact: true`) for the scope, type and window alone, and for ' +
  `other filters up to ${COUNT_LIMITS.exactCountLimit.toLocaleString('en-US')} matches; beyond that it is the database's estimate and \`total_exact\` is false.`

const filters = 'Filters combine with AND; an empty string or 0 means no filter; `start_timestamp` and `end_timestamp` are unix seconds, both inclusive.'

const stat = '`quota` sums the matching rows over the window; `rpm` and `tpm` count the rows and their tokens over the last 60 seconds ' +
  '(same filters, window ignored). `type` defaults to 2 (consume); 0 means every type.'

const search = 'The 100 newest rows whose content contains the keyword, case-insensitively and literally (`%` and `_` are plain ' +
  'characters), or whose type equals it when it is an integer. A keyword with three letters or digits in a row is looked up in ' +
  'an index. A shorter one (e.g. "ab", "超时") cannot be: the rows in scope are read newest first, ' +
  `in chunks of up to ${SHORT_KEYWORD_SCAN.chunkRows.toLocaleString('en-US')}, until 100 matches are found or a time budget ` +
  `(SEARCH_SCAN_BUDGET_MS, ${SHORT_KEYWORD_SCAN.budgetMs / 1000} s by default) runs out; then the answer holds the matches found so far, ` +
  'newest first, and says so with `X-Search-Complete: false`. Every search answer carries `X-Search-Complete`.'

const exportHow = (maxRows: number) => 'Newest first, streamed as it is read, in constant memory, however many rows (no statement timeout ' +
  'ends it: each batch of rows is a query of its own). `format=csv` (default): RFC 4180, UTF-8, a header row, CRLF line ends; a text ' +
  'cell starting with `=`, `+`, `-`, `@`, TAB or CR gets a leading `\'` so that a spreadsheet shows it instead of running it ' +
  '(numbers are written as they are); `bom=true` starts the file with a UTF-8 byte order mark for Excel. `format=ndjson`: one JSON ' +
  `object per line, the fields of the list's items. At most ${maxRows.toLocaleString('en-US')} rows (EXPORT_MAX_ROWS): a larger ` +
  'match is refused with 400 `LOG_EXPORT_TOO_LARGE` before anything is sent; narrow the window. A failure before the first byte ' +
  'answers in the error envelope; after it, the response can only be aborted (the body then ends without its last chunk, ' +
  'which HTTP clients report as an error), never truncated silently: that includes rows written during the export that take it past the limit.'

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
  ingestLogs: (limits: { bodyLimit: number, lineLimit: number, maxBackfillBytes: number, chunkRows: number }) =>
    'Writes log rows, for gateways: an admin, or the service\'s ingest key (`INGEST_KEY`, which may do nothing else). ' +
    '`created_at` defaults to the time the row arrives, `request_id` to a new random id, other fields to 0, false or empty. ' +
    'Unknown fields and values of the wrong type are refused, never coerced. Totals and stats include the rows as soon as this answers.\n\n' +
    `**application/json**: an array of 1..1,000 rows (at most ${limits.bodyLimit.toLocaleString('en-US')} bytes, else 413), ` +
    'written in one statement: every row or none. A bad row answers 400 naming its index (0-based) and field, and nothing is written.\n\n' +
    '**application/x-ndjson**: one row per line, any number of lines, streamed: written in transactions of ' +
    `${limits.chunkRows.toLocaleString('en-US')} rows as the body arrives, in constant memory. A line longer than ` +
    `${limits.lineLimit.toLocaleString('en-US')} bytes, not JSON, not UTF-8 or not a valid row stops the backfill with a 400 naming the line; ` +
    (limits.maxBackfillBytes > 0 ? `a body over ${limits.maxBackfillBytes.toLocaleString('en-US')} bytes stops it with a 413. ` : '') +
    '**The chunks committed before the stop stay written**: the message says how many rows were written (always a whole number of ' +
    'chunks, the first rows of the body), so a client resends from the row after them. Blank lines are skipped. ' +
    'Answers the number of rows written.',
  exportLogs: (maxRows: number) => `Every log row of the site that matches the filters, with the admin fields (channel_name last). ${exportHow(maxRows)} ${filters}`,
  exportSelfLogs: (maxRows: number) => `The caller's own rows that match the filters, with the user fields only. ${exportHow(maxRows)} ${filters}`,
  healthz: 'Liveness: answers 200 as long as the process runs and its event loop turns, without touching the database (a ' +
    'database outage must not get a healthy process restarted). Never shed under load. Needs no credentials.',
  readyz: 'Readiness: 200 when the database answers and every migration of this version is applied; otherwise 503 with ' +
    '`data` saying which (`database`: `unavailable`, or `timeout` when it did not answer within a second; `migrations`: `pending`), ' +
    'code `LOG_DB_UNAVAILABLE` or `LOG_NOT_READY`. Answers within about a second even when the database hangs. Never shed under ' +
    'load. Needs no credentials.',
  metrics: 'Prometheus metrics in the text exposition format: requests and latency per operationId and status, errors per ' +
    'envelope code, database pool use, the stat fold backlog, purges, retention, ingested rows, load shedding, and the ' +
    'process and Node.js runtime. When the service is configured with `METRICS_TOKEN`, it needs `Authorization: Bearer ' +
    '<METRICS_TOKEN>` (401 otherwise); without it, it is open. Never shed under load.'
} as const
