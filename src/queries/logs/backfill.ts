import type pg from 'pg'
import { BodyTooLargeError, LineError, ndjsonLines } from '../../lib/ndjson.js'
import { rowProblem, type IngestRow } from '../../schemas/ingest.js'
import { ChunkSums, copyLine, copyLogChunk, toLogRow } from './ingest.js'

// A backfill of any size from NDJSON, one COPY transaction per chunk. Memory is bounded by two
// chunks (the one being written and the one being read) whatever the size of the body: the body
// is read only as fast as chunks are written. A transaction is never open while the client is
// still sending, so a slow client holds no locks and no snapshot.

export interface BackfillOptions {
  /** rows per chunk (one COPY, one commit) */
  chunkRows: number
  /** a chunk is also written once its COPY text reaches this many characters (long rows) */
  chunkBytes: number
  /** longest line accepted */
  maxLineBytes: number
  /** most bytes of body read; 0 = no limit */
  maxBytes: number
  /** unix seconds for rows without created_at */
  now: () => number
  /** after each committed chunk, with the total written so far */
  onChunk?: (written: number) => void
}

/** What stopped a backfill; `written` rows (every chunk before the stop) stay written. */
export class BackfillError extends Error {
  constructor (readonly kind: 'line' | 'too-large', message: string, readonly written: number) {
    super(`${message}; the first ${written} rows were written, nothing after them (resend from the row after those)`)
  }
}

function parseLine (text: string, line: number): IngestRow {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new LineError(line, 'is not valid JSON')
  }
  const problem = rowProblem(value)
  if (problem !== undefined) throw new LineError(line, problem)
  return value as IngestRow
}

/** Writes every row of the body; returns how many. Throws BackfillError at the first bad line. */
export async function backfillLogs (pool: pg.Pool, body: AsyncIterable<Buffer | string>, opts: BackfillOptions): Promise<number> {
  const client = await pool.connect()
  let written = 0
  let inFlight: Promise<void> | null = null
  let text = ''
  let rows = 0
  let sums = new ChunkSums()

  const flush = async () => {
    // The chunk before this one is written before this one starts: one COPY at a time, in order.
    if (inFlight !== null) await inFlight
    if (rows === 0) return
    const chunk = { text, rows, sums }
    text = ''
    rows = 0
    sums = new ChunkSums()
    inFlight = copyLogChunk(client, chunk.text, chunk.rows, chunk.sums).then((n) => {
      written += n
      opts.onChunk?.(written)
    })
  }

  let failed = false
  try {
    for await (const { line, text: json } of ndjsonLines(body, opts.maxLineBytes, opts.maxBytes)) {
      const row = toLogRow(parseLine(json, line), opts.now())
      text += copyLine(row)
      rows++
      sums.add(row)
      if (rows >= opts.chunkRows || text.length >= opts.chunkBytes) await flush()
    }
    await flush()
    if (inFlight !== null) await inFlight
    return written
  } catch (err) {
    failed = true
    // What was read before the failure and is already on its way stays written, as documented.
    if (inFlight !== null) await (inFlight as Promise<void>).catch(() => {})
    if (err instanceof LineError) throw new BackfillError('line', err.message, written)
    if (err instanceof BodyTooLargeError) throw new BackfillError('too-large', err.message, written)
    throw err
  } finally {
    // A client whose COPY failed midway may be in an unknown protocol state: do not reuse it.
    client.release(failed)
  }
}
