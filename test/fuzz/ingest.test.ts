// POST /api/log/ fuzzed with bodies that may be valid: JSON batches and NDJSON backfills of rows
// near the schema's edges, every credential, limits crossed. Ingestion is the one route that
// writes, so the property is that it writes exactly what it answers: a 200's rows are the rows
// sent, a refused batch writes nothing, a refused backfill writes the whole chunks its message
// counts, and nothing else (seeded rows, users, tokens) changes; the rollups stay the sums of logs.
import fc from 'fast-check'
import { sql } from 'kysely'
import t from 'tap'
import type { App } from '../../src/app.js'
import { buildTestApp } from '../helpers/app.js'
import { answerProblem, holds, rollupMismatches, seedWorld, tableChecksums, fuzzSettings, type FuzzWorld } from '../helpers/fuzz.js'

const INGEST_KEY = 'ingest-key-for-the-fuzzer-0123456789abcdef'
const METRICS_TOKEN = 'metrics-token-for-the-fuzzer-0123'
const INGEST_BODY_LIMIT = 64 * 1024
const INGEST_LINE_LIMIT = 4096
const INGEST_MAX_BYTES = 8 * 1024
// Small chunks, so that a backfill refused half-way has written some of them.
const INGEST_CHUNK_ROWS = 4
const INT4_MAX = 2_147_483_647
const MAX = Number.MAX_SAFE_INTEGER

const settings = fuzzSettings(250)

// ---------- rows ----------

/** A field's value and whether the schema accepts it (undefined: either answer is right, never a 5xx). */
interface Field { value: unknown, ok: boolean | undefined }

const good = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Field> => arb.map((value) => ({ value, ok: true }))
const bad = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Field> => arb.map((value) => ({ value, ok: false }))
const wrongType = bad(fc.constantFrom('1', null, true, [], {}, 1.5, '', 'abc'))

/** A field's values: `valid` only those the schema accepts, `any` those and the rest. */
interface FieldArbs { valid: fc.Arbitrary<Field>, any: fc.Arbitrary<Field> }

function intField (min: number, max: number): FieldArbs {
  const valid = good(fc.oneof(fc.integer({ min: Math.max(min, -(2 ** 31)), max: Math.min(max, 2 ** 31 - 1) }), fc.constantFrom(min, max)))
  return {
    valid,
    any: fc.oneof(
      { weight: 6, arbitrary: valid },
      { weight: 1, arbitrary: bad(fc.constantFrom(min - 1, max + 1, max * 2, 1e300, -1e300, 0.5)) },
      { weight: 1, arbitrary: wrongType }
    )
  }
}

function textField (maxLength: number): FieldArbs {
  const valid = good(fc.oneof(
    { weight: 24, arbitrary: fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 })).map((v) => v.replaceAll('\0', '')) },
    { weight: 3, arbitrary: fc.constantFrom('模型', '😀', '\t\\\n', '%_', "'", '\u0001\u001f', '\u007f\u0080') },
    { weight: 1, arbitrary: fc.constantFrom('x'.repeat(Math.min(maxLength, 4096)), '模'.repeat(maxLength)) }
  ))
  return {
    valid,
    any: fc.oneof(
      { weight: 6, arbitrary: valid },
      { weight: 1, arbitrary: bad(fc.constantFrom('a\u0000b', '\u0000', 'x'.repeat(maxLength + 1), '😀'.repeat(maxLength + 1))) },
      // A lone surrogate is JSON (an escape) but no Unicode text: refused, not stored as U+FFFD.
      { weight: 1, arbitrary: bad(fc.constantFrom('\ud800', 'a\udfffb', '\udbff\udbff', '\udfff\ud800')) },
      { weight: 1, arbitrary: wrongType }
    )
  }
}

const FIELDS: Record<string, FieldArbs> = {
  created_at: intField(0, MAX),
  content: textField(65_535),
  username: textField(255),
  token_name: textField(255),
  model_name: textField(255),
  quota: intField(-MAX, MAX),
  prompt_tokens: intField(0, INT4_MAX),
  completion_tokens: intField(0, INT4_MAX),
  use_time: intField(0, INT4_MAX),
  is_stream: { valid: good(fc.boolean()), any: fc.oneof({ weight: 4, arbitrary: good(fc.boolean()) }, { weight: 1, arbitrary: bad(fc.constantFrom('true', 1, 0, null)) }) },
  channel_id: intField(0, INT4_MAX),
  token_id: intField(0, INT4_MAX),
  group: textField(255),
  ip: textField(64),
  request_id: textField(64),
  other: textField(65_535)
}

interface GenRow { row: Record<string, unknown>, ok: boolean | undefined }

const pick = (which: keyof FieldArbs) => Object.fromEntries(Object.entries(FIELDS).map(([name, arbs]) => [name, arbs[which]]))

/** A row the schema accepts, sent as the gateway would. */
const validRowArb: fc.Arbitrary<GenRow> = fc.record({
  user_id: intField(1, INT4_MAX).valid,
  type: intField(0, 7).valid,
  optional: fc.record(pick('valid'), { requiredKeys: [] })
}).map(({ user_id: userId, type, optional }) => ({
  row: { user_id: userId.value, type: type.value, ...Object.fromEntries(Object.entries(optional).map(([k, f]) => [k, f?.value])) },
  ok: true
}))

/** Any row: a field missing, out of range, of the wrong type, unknown. */
const anyRowArb: fc.Arbitrary<GenRow> = fc.record({
  user_id: fc.option(intField(1, INT4_MAX).any, { nil: undefined, freq: 15 }),
  type: fc.option(intField(0, 7).any, { nil: undefined, freq: 15 }),
  optional: fc.record(pick('any'), { requiredKeys: [] }),
  extra: fc.option(fc.constantFrom('id', 'model', 'extra', '__proto__', 'channel_name'), { nil: undefined, freq: 10 })
}).map(({ user_id: userId, type, optional, extra }) => {
  const fields: Array<[string, Field | undefined]> = [['user_id', userId], ['type', type], ...Object.entries(optional)]
  const row: Record<string, unknown> = {}
  let ok: boolean | undefined = true
  for (const [name, field] of fields) {
    if (field === undefined) {
      // user_id and type are required.
      if (name === 'user_id' || name === 'type') ok = false
      continue
    }
    row[name] = field.value
    if (field.ok === false) ok = false
    else if (field.ok === undefined && ok === true) ok = undefined
  }
  if (extra !== undefined) {
    // defineProperty: `__proto__` as an own key, as JSON.parse makes it on the server.
    Object.defineProperty(row, extra, { value: 1, enumerable: true, writable: true, configurable: true })
    ok = false
  }
  return { row, ok }
})

const rowArb = fc.oneof({ weight: 2, arbitrary: validRowArb }, { weight: 1, arbitrary: anyRowArb })

const allOk = (rows: GenRow[]): boolean | undefined =>
  rows.some((r) => r.ok === false) ? false : rows.every((r) => r.ok === true) ? true : undefined

// ---------- bodies ----------

type Credential = 'admin' | 'root' | 'ingestKey' | 'user' | 'disabled' | 'none' | 'metrics' | 'bearerGarbage'
const WRITERS = new Set<Credential>(['admin', 'root', 'ingestKey'])

interface Body {
  kind: 'batch' | 'ndjson' | 'other'
  contentType: string | undefined
  payload: string | Buffer
  /** the rows in order, for a batch or a backfill */
  rows: GenRow[]
  /** NDJSON: each line's row, or null for a blank line and 'bad' for one that is not a row */
  lines: Array<GenRow | null | 'bad'>
}

/** At and past the batch's 1,000 rows. */
const manyRows: fc.Arbitrary<GenRow[]> = fc.constantFrom(1000, 1001).map((n) => Array.from({ length: n }, (_, i) => ({ row: { user_id: 1 + i, type: 2, created_at: 1_700_000_000 + i }, ok: true })))

/** Past INGEST_MAX_BYTES: the chunks before the line that crosses it are written. */
const longBackfill: fc.Arbitrary<Array<GenRow | null | 'bad' | string>> = fc.constantFrom(100, 300).map((n) => Array.from({ length: n }, (_, i) => ({ row: { user_id: 7, type: 2, created_at: 1_700_000_000 + i, content: 'backfill' }, ok: true })))

const batchArb: fc.Arbitrary<Body> = fc.record({
  rows: fc.oneof({ weight: 8, arbitrary: fc.array(rowArb, { minLength: 0, maxLength: 6 }) }, { weight: 1, arbitrary: manyRows }),
  contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'Application/JSON'),
  pad: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, INGEST_BODY_LIMIT)
}).map(({ rows, contentType, pad }) => ({ kind: 'batch', contentType, payload: JSON.stringify(rows.map((r) => r.row)) + ' '.repeat(pad), rows, lines: [] }))

const lineArb: fc.Arbitrary<GenRow | null | 'bad' | string> = fc.oneof(
  { weight: 8, arbitrary: rowArb },
  { weight: 1, arbitrary: fc.constantFrom(null, '', '   ', '\r') },
  { weight: 1, arbitrary: fc.constantFrom('{', '[]', '[{"user_id":1,"type":1}]', 'null', '1', '"x"', 'x'.repeat(INGEST_LINE_LIMIT + 1), '\u00ff\u00fe') }
)

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Whether the Latin-1 bytes of `line` reach the server as the line itself, or as bytes it must refuse: never as other text. */
function latin1Faithful (line: string): boolean {
  try {
    return strictUtf8.decode(Buffer.from(line, 'latin1')) === line
  } catch {
    return true
  }
}

const ndjsonArb: fc.Arbitrary<Body> = fc.record({
  lines: fc.oneof({ weight: 8, arbitrary: fc.array(lineArb, { maxLength: 14 }) }, { weight: 1, arbitrary: longBackfill }),
  contentType: fc.constantFrom('application/x-ndjson', 'application/x-ndjson; charset=utf-8', 'APPLICATION/X-NDJSON'),
  crlf: fc.boolean(),
  finalNewline: fc.boolean(),
  latin1: fc.boolean()
}).map(({ lines, contentType, crlf, finalNewline, latin1: wanted }) => {
  const parsed = lines.map((l): GenRow | null | 'bad' => l === null ? null : typeof l === 'string' ? (l.trim() === '' ? null : 'bad') : l)
  const texts = lines.map((l) => l === null ? '' : typeof l === 'string' ? l : JSON.stringify(l.row))
  const text = texts.join(crlf ? '\r\n' : '\n') + (finalNewline ? '\n' : '')
  // Latin-1 bytes are not UTF-8 wherever a line has a character above U+007F, unless they happen
  // to be (Node writes the low byte of a character above U+00FF, and "Ã©" is UTF-8 for "é"): such
  // a body is sent as UTF-8, since the rows the server would read from it are not the rows sent.
  const latin1 = wanted && texts.every(latin1Faithful)
  const payload = latin1 ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8')
  const nonAscii = latin1 && [...text].some((c) => c.charCodeAt(0) > 0x7f)
  return { kind: 'ndjson', contentType, payload, rows: parsed.filter((l): l is GenRow => l !== null && l !== 'bad'), lines: nonAscii ? parsed.map((l) => l === null ? null : 'bad') : parsed }
})

const otherArb: fc.Arbitrary<Body> = fc.record({
  contentType: fc.constantFrom(undefined, 'text/plain', 'text/csv', 'application/x-www-form-urlencoded', 'application/octet-stream', 'application/xml', 'multipart/form-data; boundary=x', 'application/ndjson', 'application/jsonx'),
  payload: fc.oneof(fc.json({ maxDepth: 2 }), fc.constantFrom('[{"user_id":1,"type":2}]', '{"user_id":1,"type":2}\n', ''))
}).map(({ contentType, payload }) => ({ kind: 'other', contentType, payload, rows: [], lines: [] }))

const bodyArb: fc.Arbitrary<Body> = fc.oneof({ weight: 4, arbitrary: batchArb }, { weight: 4, arbitrary: ndjsonArb }, { weight: 1, arbitrary: otherArb })

const credentialArb: fc.Arbitrary<Credential> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<Credential>('admin', 'ingestKey', 'root') },
  { weight: 1, arbitrary: fc.constantFrom<Credential>('user', 'disabled', 'none', 'metrics', 'bearerGarbage') }
)

function credentialHeaders (c: Credential, world: FuzzWorld): Record<string, string> {
  switch (c) {
    case 'admin': return world.admin.headers
    case 'root': return world.root.headers
    case 'ingestKey': return { authorization: `Bearer ${INGEST_KEY}` }
    case 'user': return world.user.headers
    case 'disabled': return world.disabled.headers
    case 'none': return {}
    case 'metrics': return { authorization: `Bearer ${METRICS_TOKEN}` }
    case 'bearerGarbage': return { authorization: `Bearer ${INGEST_KEY}x` }
  }
}

// ---------- what a 200 wrote ----------

const STORED = ['user_id', 'created_at', 'type', 'content', 'username', 'token_name', 'model_name', 'quota', 'prompt_tokens', 'completion_tokens', 'use_time', 'is_stream', 'channel_id', 'token_id', 'group', 'ip', 'request_id', 'other'] as const
const DEFAULTS: Record<string, unknown> = { content: '', username: '', token_name: '', model_name: '', quota: 0, prompt_tokens: 0, completion_tokens: 0, use_time: 0, is_stream: false, channel_id: 0, token_id: 0, group: '', ip: '', other: '' }

/** How a stored row differs from the row sent (created_at and request_id have defaults made at write time). */
function rowDifference (sent: Record<string, unknown>, stored: Record<string, unknown>, window: [number, number]): string | undefined {
  for (const column of STORED) {
    const got = stored[column]
    if (column === 'created_at' && sent.created_at === undefined) {
      if (typeof got !== 'number' || got < window[0] || got > window[1]) return `created_at ${String(got)} is not the time of writing`
      continue
    }
    if (column === 'request_id' && sent.request_id === undefined) {
      if (typeof got !== 'string' || !/^[0-9a-f]{32}$/.test(got)) return `request_id ${String(got)} is not a new random id`
      continue
    }
    const want = sent[column] ?? DEFAULTS[column]
    if (got !== want) return `${column}: sent ${JSON.stringify(want)}, stored ${JSON.stringify(got)}`
  }
  return undefined
}

async function rowsAfter (app: App, id: number): Promise<Array<Record<string, unknown> & { id: number }>> {
  return await app.db.selectFrom('logs').selectAll().where('id', '>', id).orderBy('id').execute() as Array<Record<string, unknown> & { id: number }>
}

async function maxId (app: App): Promise<number> {
  const { rows: [r] } = await sql<{ id: number | null }>`select max(id) as id from logs`.execute(app.db)
  return r?.id ?? 0
}

/** The rows a refused backfill says it wrote ("the first N rows were written"). */
function writtenBefore (message: string): number {
  const m = /the first ([0-9]+) rows were written/.exec(message)
  return m === null ? 0 : Number(m[1])
}

// ---------- the test ----------

t.test('ingestion writes exactly what it answers, whatever the body', async (t) => {
  const app = await buildTestApp(t, {
    STAT_FOLD_INTERVAL_MS: 0,
    INGEST_KEY,
    METRICS_TOKEN,
    INGEST_BODY_LIMIT,
    INGEST_LINE_LIMIT,
    INGEST_MAX_BYTES,
    INGEST_CHUNK_ROWS,
    LOG_LEVEL: 'debug'
  })
  const world = await seedWorld(app)
  const seededMax = Math.max(...world.logIds)
  const before = await tableChecksums(app.db)
  const seededRows = async () => (await app.db.selectFrom('logs').selectAll().where('id', '<=', seededMax).orderBy('id').execute()).map((r) => JSON.stringify(r))
  const seededBefore = await seededRows()
  let written = 0
  let refusedWithRows = 0
  const statuses = new Map<string, number>()

  const property = fc.asyncProperty(fc.record({ body: bodyArb, credential: credentialArb }), async ({ body, credential }) => {
    const headers: Record<string, string> = { ...credentialHeaders(credential, world), ...(body.contentType === undefined ? {} : { 'content-type': body.contentType }) }
    const from = await maxId(app)
    const start = Math.floor(Date.now() / 1000)
    const res = await app.inject({ method: 'POST', url: '/api/log/', headers, payload: body.payload })
    const end = Math.ceil(Date.now() / 1000)
    const label = `${body.kind} as ${credential}, ${body.contentType ?? 'no content-type'}, ${body.payload.length} bytes ${JSON.stringify(body.payload.toString().slice(0, 200))}: ${res.statusCode} ${res.body.slice(0, 300)}`

    const batchOk = body.kind === 'batch' ? (body.rows.length < 1 || body.rows.length > 1000 || Buffer.byteLength(body.payload) > INGEST_BODY_LIMIT ? false : allOk(body.rows)) : undefined
    const mayBeValid = WRITERS.has(credential) && body.kind !== 'other' && batchOk !== false
    const problem = answerProblem(res, { method: 'POST', mayBeValid })
    if (problem !== undefined) throw new Error(`${label}: ${problem}`)
    if (batchOk === true && WRITERS.has(credential) && res.statusCode !== 200) throw new Error(`${label}: a valid batch from a writer is written`)

    const key = `${body.kind} ${res.statusCode}`
    statuses.set(key, (statuses.get(key) ?? 0) + 1)
    const added = await rowsAfter(app, from)
    const expected = res.statusCode === 200 ? (JSON.parse(res.body) as { data: number }).data : body.kind === 'ndjson' ? writtenBefore(res.body) : 0
    if (added.length !== expected) throw new Error(`${label}: ${added.length} rows were written, the answer says ${expected}`)
    if (res.statusCode !== 200 && expected > 0) refusedWithRows++
    written += added.length

    // The rows written are the first rows sent, in order, as sent.
    const sent = body.rows.slice(0, added.length)
    if (res.statusCode === 200 && sent.length !== body.rows.length) throw new Error(`${label}: ${body.rows.length} rows sent, ${sent.length} written`)
    for (const [i, stored] of added.entries()) {
      const difference = rowDifference(sent[i]!.row, stored, [start, end])
      if (difference !== undefined) throw new Error(`${label}: row ${i}: ${difference}`)
    }
  })

  await holds(t, 'every answer is a 200 that wrote its rows, or the error envelope and at most whole chunks', property, settings)

  t.test('the fuzz wrote rows, and some refused backfills kept their first chunks', async (t) => {
    t.ok(written > 0, `${written} rows written`)
    t.comment(`${refusedWithRows} refused backfills wrote whole chunks first; answers: ${[...statuses].sort().map(([k, n]) => `${k}: ${n}`).join(', ')}`)
  })

  t.test('nothing else changed', async (t) => {
    const after = await tableChecksums(app.db)
    for (const table of ['users', 'tokens', 'channels']) t.equal(after[table], before[table], `${table} unchanged`)
    t.strictSame(await seededRows(), seededBefore, 'the seeded rows are unchanged')
    t.strictSame(await rollupMismatches(app), [], 'every rollup is the sums of logs once the deltas are folded')
  })

  t.test('the app still answers a normal request', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/log/', headers: { ...world.admin.headers, 'content-type': 'application/json' }, payload: JSON.stringify([{ user_id: 1, type: 2 }]) })
    t.equal(res.statusCode, 200)
    t.equal(res.json().data, 1)
  })
})
