import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { escapeCopyText } from '../../db/copy-text.js'
import { prepared } from '../../db/plan.js'
import type { Database } from '../../db/types.js'
import type { IngestRow } from '../../schemas/ingest.js'
import { ROLLUP_WRITE_LOCK_NAME, rollupUpsertsText } from '../rollups/fold.js'
import { DELTA_SECONDS } from '../rollups/model.js'

// Writing log rows that gateways send. Two paths, one row shape:
// - a batch (≤ 1,000 rows) is one INSERT: the statement-level trigger records its stat deltas and
//   the fold moves them into the rollups, as for any other writer;
// - a backfill chunk is one COPY whose stat sums go straight into the rollups in the same
//   transaction, so a million rows leave no backlog of deltas for the fold to work through, and
//   a reader sees a chunk's rows and its sums together or not at all.

/** Every column a written row sets, in COPY order (id comes from the sequence). */
export const INGEST_COLUMNS = [
  'user_id', 'created_at', 'type', 'content', 'username', 'token_name', 'model_name', 'quota',
  'prompt_tokens', 'completion_tokens', 'use_time', 'is_stream', 'channel_id', 'token_id', 'group',
  'ip', 'request_id', 'other'
] as const

export type LogRow = { [C in typeof INGEST_COLUMNS[number]]: C extends 'is_stream' ? boolean : C extends StringColumn ? string : number }
type StringColumn = 'content' | 'username' | 'token_name' | 'model_name' | 'group' | 'ip' | 'request_id' | 'other'

/** A validated row with the defaults filled in: created_at `now`, a new request_id, zeros and empty strings. */
export function toLogRow (r: IngestRow, now: number): LogRow {
  return {
    user_id: r.user_id,
    created_at: r.created_at ?? now,
    type: r.type,
    content: r.content ?? '',
    username: r.username ?? '',
    token_name: r.token_name ?? '',
    model_name: r.model_name ?? '',
    quota: r.quota ?? 0,
    prompt_tokens: r.prompt_tokens ?? 0,
    completion_tokens: r.completion_tokens ?? 0,
    use_time: r.use_time ?? 0,
    is_stream: r.is_stream ?? false,
    channel_id: r.channel_id ?? 0,
    token_id: r.token_id ?? 0,
    group: r.group ?? '',
    ip: r.ip ?? '',
    request_id: r.request_id ?? randomUUID().replaceAll('-', ''),
    other: r.other ?? ''
  }
}

/**
 * Writes a batch in one statement (all rows or none); returns how many. One JSON parameter rather
 * than a parameter per value: the statement is the same text for every batch size, so it is
 * prepared once per connection.
 */
export async function insertLogRows (db: Kysely<Database>, rows: LogRow[]): Promise<number> {
  const columns = sql.join(INGEST_COLUMNS.map((c) => sql.ref(c)))
  const result = await sql`
    insert into logs (${columns})
    select ${columns} from json_populate_recordset(null::logs, ${JSON.stringify(rows)}::json)`
    .withPlugin(prepared('ingest-batch')).execute(db)
  return Number(result.numAffectedRows ?? 0)
}

/** One row as a line of COPY … (format text), columns in INGEST_COLUMNS order. */
export function copyLine (r: LogRow): string {
  return `${r.user_id}\t${r.created_at}\t${r.type}\t${escapeCopyText(r.content)}\t${escapeCopyText(r.username)}\t` +
    `${escapeCopyText(r.token_name)}\t${escapeCopyText(r.model_name)}\t${r.quota}\t${r.prompt_tokens}\t` +
    `${r.completion_tokens}\t${r.use_time}\t${r.is_stream ? 't' : 'f'}\t${r.channel_id}\t${r.token_id}\t` +
    `${escapeCopyText(r.group)}\t${escapeCopyText(r.ip)}\t${escapeCopyText(r.request_id)}\t${escapeCopyText(r.other)}\n`
}

/** The sums of a chunk per (user, minute, type): what the triggers would have recorded as deltas. */
export class ChunkSums {
  private readonly sums = new Map<string, { user: number, minute: number, type: number, n: number, quota: bigint, prompt: number, completion: number }>()

  add (r: LogRow): void {
    const minute = Math.floor(r.created_at / DELTA_SECONDS)
    const key = `${r.user_id}:${minute}:${r.type}`
    const s = this.sums.get(key)
    // quota is summed as a bigint: 10,000 rows of large quotas can pass 2^53.
    if (s === undefined) {
      this.sums.set(key, { user: r.user_id, minute, type: r.type, n: 1, quota: BigInt(r.quota), prompt: r.prompt_tokens, completion: r.completion_tokens })
    } else {
      s.n++
      s.quota += BigInt(r.quota)
      s.prompt += r.prompt_tokens
      s.completion += r.completion_tokens
    }
  }

  /** Column arrays for unnest(); pg sends them as array literals. */
  columns (): unknown[] {
    const all = [...this.sums.values()]
    return [
      all.map((s) => s.user), all.map((s) => s.minute), all.map((s) => s.type), all.map((s) => s.n),
      all.map((s) => s.quota.toString()), all.map((s) => s.prompt), all.map((s) => s.completion)
    ]
  }
}

const UPSERT_SUMS = `
  with moved as materialized (
    select * from unnest($1::int[], $2::int8[], $3::int[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
      as m(user_id, minute, type, n, quota, prompt_tokens, completion_tokens)
  ),
  ${rollupUpsertsText()}
  select 1`

/**
 * Writes one chunk of COPY text and its sums in one transaction; returns the rows written. The
 * triggers' deltas are switched off for this transaction only (the sums are written here).
 */
export async function copyLogChunk (client: pg.ClientBase, text: string, rows: number, sums: ChunkSums): Promise<number> {
  await client.query('begin')
  try {
    await client.query("select set_config('log_service.stat_capture', 'off', true)")
    const copy = client.query(copyFrom(`copy logs (${INGEST_COLUMNS.map((c) => client.escapeIdentifier(c)).join(', ')}) from stdin with (format text)`))
    await new Promise<void>((resolve, reject) => {
      copy.on('finish', resolve)
      copy.on('error', reject)
      copy.end(text)
    })
    if (copy.rowCount !== rows) throw new Error(`COPY wrote ${copy.rowCount} rows, expected ${rows}`)
    // Taken last, so a chunk holds the lock every rollup writer takes only for its upsert.
    await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [ROLLUP_WRITE_LOCK_NAME])
    await client.query(UPSERT_SUMS, sums.columns())
    await client.query('commit')
    return rows
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  }
}
