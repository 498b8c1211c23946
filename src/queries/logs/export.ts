import { sql, type Expression, type Kysely } from 'kysely'
import pg from 'pg'
import { to as copyTo, type CopyToStreamQuery } from 'pg-copy-streams'
import type { Database } from '../../db/types.js'
import { crlfRecords, FORMULA_PREFIXES } from '../../lib/csv.js'
import type { CursorPosition } from '../../lib/cursor.js'
import { COUNT_LIMITS } from './count-strategy.js'
import { whereLogs, type LogFilter } from './filter.js'
import { adminColumns, channelName, userColumns } from './page.js'
import { countLogs, type Total } from './total.js'

// Every row matching a filter, newest first, as CSV or NDJSON text, in keyset batches:
// - each batch is its own short statement, so the pool's statement_timeout bounds a batch, not the
//   export, and no transaction stays open to hold back vacuum; a batch starts where the last one
//   ended, through the same indexes as a keyset page, so each matching entry is read once;
// - each batch is a COPY (SELECT …) TO STDOUT, and PostgreSQL writes the text itself: parsing
//   20 columns per row in node-postgres and encoding them again cost ~14 µs of the service's CPU
//   per row, COPY ~2 µs (bench/RESULTS.md, "Export"), which is what lets one core stream
//   100,000 rows/s. COPY takes no parameters: the batch's SELECT is built with Kysely and its
//   values inlined as literals (integers checked, strings escaped by node-postgres).

export type ExportFormat = 'csv' | 'ndjson'

/** Rows per statement: a 1M-row export is 200 statements, and a batch is ~2 MB of text. */
export const EXPORT_BATCH_SIZE = 5000

export type ExportAudience = 'user' | 'admin'

const unqualified = (columns: readonly string[]) => columns.map((c) => c.replace(/^logs\./, ''))

/** The fields of an exported row, in the order of the CSV header and of each NDJSON object. */
export const EXPORT_FIELDS: Record<ExportAudience, readonly string[]> = {
  user: unqualified(userColumns),
  admin: [...unqualified(adminColumns), 'channel_name']
}

// The keyset of a batch's last record is read back from its text: CSV records start with these
// two numbers (never quoted), and NDJSON lines are parsed.
if (EXPORT_FIELDS.user[0] !== 'id' || EXPORT_FIELDS.user[2] !== 'created_at') throw new Error('exported rows must start with id, user_id, created_at')

const TEXT_COLUMNS = new Set(['content', 'token_name', 'model_name', 'group', 'request_id', 'username', 'ip', 'other'])
const formulaPrefixes = sql.raw(FORMULA_PREFIXES.map((p) => pg.escapeLiteral(p)).join(', '))

/** A CSV cell as PostgreSQL should write it: text neutralised (lib/csv.ts), booleans as true/false, numbers as they are. */
function csvColumn (column: string) {
  const ref = sql.ref(column)
  const name = column.replace(/^logs\./, '')
  if (column === 'logs.is_stream') return sql`${ref}::text`.as(name)
  if (!TEXT_COLUMNS.has(name)) return ref.as(name)
  return csvText(ref).as(name)
}

function csvText (text: Expression<unknown>) {
  return sql<string>`case when left(${text}, 1) in (${formulaPrefixes}) then '''' || ${text} else ${text} end`
}

function batchRows (db: Kysely<Database>, f: LogFilter, after: CursorPosition | undefined, limit: number) {
  let rows = db.selectFrom('logs').where((eb) => whereLogs(eb, f))
  if (after !== undefined) {
    rows = rows.where(({ eb, refTuple, tuple }) => eb(refTuple('logs.created_at', 'logs.id'), '<', tuple(after.createdAt, after.id)))
  }
  // A literal LIMIT, as on the list's pages (page.ts): a parameter is estimated at a tenth of the table.
  return rows.orderBy('logs.created_at', 'desc').orderBy('logs.id', 'desc').limit(sql<number>`${sql.lit(limit)}`)
}

/** The SELECT a batch copies out: one CSV record or one JSON object per row. */
function batchQuery (db: Kysely<Database>, audience: ExportAudience, format: ExportFormat, f: LogFilter, after: CursorPosition | undefined, limit: number) {
  const rows = batchRows(db, f, after, limit)
  const admin = rows.leftJoin('channels', 'channels.id', 'logs.channel_id')
  if (format === 'csv') {
    // A channel's name is text someone typed, like any other.
    return audience === 'admin'
      ? admin.select(adminColumns.map(csvColumn)).select(csvText(sql`coalesce(channels.name, '')`).as('channel_name'))
      : rows.select(userColumns.map(csvColumn))
  }
  const inner = audience === 'admin' ? admin.select(adminColumns).select(channelName) : rows.select(userColumns)
  // The order again outside: a subquery's order is not the outer query's by any guarantee.
  return db.selectFrom(inner.as('b')).select(sql<string>`row_to_json(b)::text`.as('line'))
    .orderBy('b.created_at', 'desc').orderBy('b.id', 'desc')
}

/**
 * The compiled statement with its values inlined as literals, for COPY. Every `$n` in Kysely's text
 * is a placeholder: this module's own SQL fragments hold no `$`.
 */
export function inlineValues (text: string, parameters: readonly unknown[]): string {
  return text.replace(/\$([0-9]+)/g, (_, n: string) => {
    const value = parameters[Number(n) - 1]
    if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
    if (typeof value === 'string') return pg.escapeLiteral(value)
    throw new Error(`cannot inline parameter $${n} (${typeof value})`)
  })
}

/**
 * How PostgreSQL writes the text: CSV as RFC 4180 quotes it (LF-terminated; crlfRecords fixes the
 * ends). NDJSON as CSV too, with a delimiter and a quote character that JSON text never holds raw
 * (it escapes every control character), so each JSON text is written as it is, one per line; the
 * text format would double every backslash of the JSON escapes.
 */
const COPY_OPTIONS: Record<ExportFormat, string> = {
  csv: 'format csv',
  ndjson: "format csv, delimiter E'\\x1f', quote E'\\x1e'"
}

/** One batch of text, the number of rows in it and the keyset of the last one. */
export interface ExportBatch {
  text: Buffer
  rows: number
  last: CursorPosition | undefined
}

/**
 * COPY … TO STDOUT, read whole. pg-copy-streams ends its stream at CopyDone, which comes before
 * the CommandComplete that carries the row count: trusting the count at the stream's end cut
 * exports short when that message came in a later TCP read. The count is read once the statement
 * is over (ReadyForQuery).
 */
async function copyOut (client: pg.PoolClient, text: string): Promise<{ raw: Buffer, rows: number }> {
  const stream = copyTo(text) as CopyToStreamQuery & { handleReadyForQuery: () => void }
  const handle = stream.handleReadyForQuery.bind(stream)
  const over = new Promise<void>((resolve) => {
    stream.handleReadyForQuery = () => {
      handle()
      resolve()
    }
  })
  client.query(stream)
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  await over
  return { raw: Buffer.concat(chunks), rows: stream.rowCount }
}

async function copyBatch (pool: pg.Pool, statement: string, format: ExportFormat): Promise<ExportBatch> {
  const client = await pool.connect()
  let failed: Error | undefined
  try {
    const { raw, rows } = await copyOut(client, `copy (${statement}) to stdout with (${COPY_OPTIONS[format]})`)
    return decodeBatch(raw, rows, format)
  } catch (err) {
    failed = err as Error
    throw err
  } finally {
    // A connection whose COPY failed half-way is not worth reusing.
    client.release(failed)
  }
}

/** The batch's text as sent, and its last row's keyset; a count that does not add up is an error, never a short export. */
function decodeBatch (raw: Buffer, rows: number, format: ExportFormat): ExportBatch {
  if (rows === 0) {
    if (raw.length > 0) throw new Error(`export batch: ${raw.length} bytes for 0 rows`)
    return { text: raw, rows, last: undefined }
  }
  if (format === 'csv') {
    const { text, records, lastRecordStart } = crlfRecords(raw, rows)
    if (records !== rows) throw new Error(`export batch: ${records} CSV records for ${rows} rows`)
    const [id, , createdAt] = raw.toString('latin1', lastRecordStart, Math.min(raw.length, lastRecordStart + 64)).split(',', 3)
    return { text, rows, last: { id: Number(id), createdAt: Number(createdAt) } }
  }
  let lines = 0
  for (let i = raw.indexOf(0x0a); i !== -1; i = raw.indexOf(0x0a, i + 1)) lines++
  if (lines !== rows) throw new Error(`export batch: ${lines} lines for ${rows} rows`)
  const lastLine = JSON.parse(raw.toString('utf8', raw.lastIndexOf(0x0a, raw.length - 2) + 1)) as { id: number, created_at: number }
  return { text: raw, rows, last: { id: lastLine.id, createdAt: lastLine.created_at } }
}

export interface ExportRequest {
  audience: ExportAudience
  format: ExportFormat
  batchSize?: number
}

/**
 * The text of every row matching `f`, newest first, batch by batch. The next batch is copied out
 * while the caller writes the current one, so PostgreSQL and the socket overlap; stopping early
 * (return()) waits for that one statement to end, so no query of the export outlives it.
 */
export async function * exportBatches (db: Kysely<Database>, pool: pg.Pool, f: LogFilter, req: ExportRequest): AsyncGenerator<ExportBatch, void, undefined> {
  const batchSize = req.batchSize ?? EXPORT_BATCH_SIZE
  const fetch = (after: CursorPosition | undefined) => {
    const { sql: text, parameters } = batchQuery(db, req.audience, req.format, f, after, batchSize).compile()
    return copyBatch(pool, inlineValues(text, parameters), req.format)
  }
  let pending: Promise<ExportBatch> | undefined = fetch(undefined)
  try {
    while (pending !== undefined) {
      const batch: ExportBatch = await pending
      pending = batch.rows === batchSize && batch.last !== undefined ? fetch(batch.last) : undefined
      if (batch.rows > 0) yield batch
    }
  } finally {
    // Its rows are not wanted any more, and its failure (if any) is nobody's to answer.
    await pending?.catch(() => {})
  }
}

/**
 * How many rows an export of `f` would write, exact up to `cap`: from the rollups where they
 * answer, else a count that stops at cap + 1. Beyond the cap the total is flagged inexact (the
 * planner's estimate, and more than the cap for certain).
 */
export async function exportSize (db: Kysely<Database>, f: LogFilter, cap: number): Promise<Total> {
  return await countLogs(db, f, { ...COUNT_LIMITS, exactCountLimit: cap })
}
