import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { sql } from 'kysely'
import type { App } from '../../src/app.js'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { keyColumns, ROLLUPS } from '../../src/queries/rollups/model.js'
import { buildTestApp, createUser, type TestUser } from '../helpers/app.js'
import { assertBadRequest } from '../helpers/envelope.js'

// POST /api/log/: JSON batches (all or none), NDJSON backfills (chunk by chunk), who may write,
// the body limits, and stats that stay exact while rows arrive.

const T = 1_790_000_000
const INGEST_KEY = 'ingest-key-0123456789abcdef0123456789abcdef'

interface Cast { app: App, admin: TestUser, alice: TestUser }

async function cast (t: Test, overrides: Parameters<typeof buildTestApp>[1] = {}): Promise<Cast> {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0, INGEST_KEY, ...overrides })
  const admin = await createUser(app.db, { role: 10, username: 'admin' })
  const alice = await createUser(app.db, { username: 'alice' })
  return { app, admin, alice }
}

const row = (i: number, extra: Record<string, unknown> = {}) => ({
  user_id: 1 + (i % 3), type: i % 5 === 0 ? 1 : 2, created_at: T + i * 37, quota: 100 + i, prompt_tokens: i, completion_tokens: 2 * i, model_name: `m${i % 4}`, ...extra
})

const ndjson = (rows: unknown[]) => rows.map((r) => typeof r === 'string' ? r : JSON.stringify(r)).join('\n') + '\n'

async function postJson (app: App, body: unknown, headers: Record<string, string>) {
  return await app.inject({ method: 'POST', url: '/api/log/', headers: { ...headers, 'content-type': 'application/json' }, payload: JSON.stringify(body) })
}

async function postNdjson (app: App, body: string | Readable, headers: Record<string, string>) {
  return await app.inject({ method: 'POST', url: '/api/log/', headers: { ...headers, 'content-type': 'application/x-ndjson' }, payload: body })
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

async function countRows (app: App): Promise<number> {
  const { rows: [r] } = await sql<{ n: number }>`select count(*)::int8 as n from logs`.execute(app.db)
  return r!.n
}

/** Every rollup equals a recomputation from logs once the pending deltas are folded. */
async function assertRollupsMatchLogs (t: Test, app: App): Promise<void> {
  while (await foldStatDeltas(app.db) > 0);
  for (const r of ROLLUPS) {
    const keys = keyColumns(r)
    const unit = sql.raw(`created_at / ${r.seconds}`)
    const groupBy = r.scope === 'user' ? sql`user_id, ${unit}, type` : sql`${unit}, type`
    const order = sql.raw(keys.map((_, i) => String(i + 1)).join(', '))
    const { rows: expected } = await sql`
      select ${groupBy}, count(*)::int8 as n, sum(quota)::int8 as quota, sum(prompt_tokens)::int8 as prompt_tokens, sum(completion_tokens)::int8 as completion_tokens
      from logs group by ${groupBy} order by ${order}`.execute(app.db)
    const { rows: got } = await sql`select ${sql.join(keys.map((k) => sql.ref(k)))}, n, quota, prompt_tokens, completion_tokens from ${sql.table(r.table)} order by ${order}`.execute(app.db)
    t.strictSame(got.map((r) => Object.values(r as object)), expected.map((r) => Object.values(r as object)), `${r.table} equals the sums of logs`)
  }
}

t.test('a JSON batch: one statement, defaults filled, readable at once', async (t) => {
  const { app, admin } = await cast(t)
  const before = Math.floor(Date.now() / 1000)
  const res = await postJson(app, [row(1), row(2, { content: '超时 "quoted", tab\there', is_stream: true }), { user_id: 2, type: 4 }], admin.headers)
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { success: true, message: '', data: 3 })

  const stored = await app.db.selectFrom('logs').selectAll().orderBy('id').execute()
  t.equal(stored.length, 3)
  t.equal(stored[1]!.content, '超时 "quoted", tab\there', 'text stored as sent')
  t.equal(stored[1]!.is_stream, true)
  const bare = stored[2]!
  t.ok(bare.created_at >= before && bare.created_at <= Math.floor(Date.now() / 1000) + 1, 'created_at defaults to now')
  t.match(bare.request_id, /^[0-9a-f]{32}$/, 'request_id generated')
  t.equal(new Set(stored.map((r) => r.request_id)).size, 3, 'each row its own request_id')
  t.equal(bare.model_name, '')
  t.equal(bare.quota, 0)

  const list = await app.inject({ method: 'GET', url: '/api/log/', headers: admin.headers })
  t.equal(list.json().data.total, 3, 'the list counts them')
  await assertRollupsMatchLogs(t, app)
})

t.test('who may write: admins and the ingest key, nobody else', async (t) => {
  const { app, alice } = await cast(t)
  const byKey = await postJson(app, [row(1)], bearer(INGEST_KEY))
  t.equal(byKey.statusCode, 200, 'the ingest key, without New-Api-User')
  const bareKey = await postJson(app, [row(2)], { authorization: INGEST_KEY })
  t.equal(bareKey.statusCode, 200, 'a bare key too, as for access tokens')

  const wrong = await postJson(app, [row(3)], bearer(INGEST_KEY.slice(0, -1) + 'x'))
  t.equal(wrong.statusCode, 401, 'a near miss is no key')
  t.equal(wrong.json().code, 'LOG_UNAUTHORIZED')
  const user = await postJson(app, [row(4)], alice.headers)
  t.equal(user.statusCode, 403, 'a plain user may not write')
  const none = await postJson(app, [row(5)], {})
  t.equal(none.statusCode, 401)

  const readWithKey = await app.inject({ method: 'GET', url: '/api/log/', headers: bearer(INGEST_KEY) })
  t.equal(readWithKey.statusCode, 401, 'the ingest key reads nothing')
  t.equal(await countRows(app), 2)

  const noKeyApp = await cast(t, { INGEST_KEY: undefined })
  const refused = await postJson(noKeyApp.app, [row(1)], bearer(INGEST_KEY))
  t.equal(refused.statusCode, 401, 'without INGEST_KEY configured, only admins')
})

t.test('a bad row rejects the whole batch, naming the row and the field', async (t) => {
  const { app, admin } = await cast(t)
  const cases: Array<[string, unknown, RegExp]> = [
    ['a field of the wrong type', [row(0), row(1), row(2, { model_name: 42 })], /row 2: model_name must be string/],
    ['a number as a string is not coerced', [row(0), row(1, { quota: '5' })], /row 1: quota must be integer/],
    ['a missing field', [{ type: 2 }], /row 0: user_id is required/],
    ['an unknown field', [row(0), row(1, { model: 'gpt' })], /row 1: unknown field model/],
    ['a type out of range', [row(0, { type: 99 })], /row 0: type must be <= 7/],
    ['a NUL in text', [row(0, { content: 'a\u0000b' })], /row 0: content must not contain NUL/],
    // JSON can escape half a surrogate pair; UTF-8, and so PostgreSQL's text, has no form for it.
    ['a lone surrogate in text', [row(0, { username: '\ud800' })], /row 0: username must not contain NUL characters or unpaired surrogates/],
    ['a surrogate pair the wrong way round', [row(0, { content: 'a\udfff\ud800b' })], /row 0: content must not contain NUL characters or unpaired surrogates/],
    ['a negative token count', [row(0, { prompt_tokens: -1 })], /row 0: prompt_tokens must be >= 0/],
    ['a fraction', [row(0, { created_at: 1.5 })], /row 0: created_at must be integer/],
    ['an id', [row(0, { id: 5 })], /row 0: unknown field id/],
    ['a row that is not an object', [row(0), 'x'], /row 1: row must be object/],
    ['not an array', row(0), /body must be a JSON array/],
    ['an empty array', [], /1\.\.1000 rows/],
    ['1,001 rows', Array.from({ length: 1001 }, (_, i) => row(i)), /1\.\.1000 rows, not 1001/]
  ]
  for (const [label, body, message] of cases) {
    assertBadRequest(t, await postJson(app, body, admin.headers), message, label)
  }
  const invalidJson = await app.inject({ method: 'POST', url: '/api/log/', headers: { ...admin.headers, 'content-type': 'application/json' }, payload: '[{"user_id":1,' })
  t.equal(invalidJson.statusCode, 400, 'broken JSON')
  t.equal(invalidJson.json().success, false)
  t.equal(await countRows(app), 0, 'nothing written by any of them')
  t.equal(await postJson(app, Array.from({ length: 1000 }, (_, i) => row(i)), admin.headers).then((r) => r.json().data), 1000, '1,000 rows is fine')
})

t.test('body limits and media types', async (t) => {
  const { app, admin } = await cast(t, { INGEST_BODY_LIMIT: 4096, INGEST_LINE_LIMIT: 2048, INGEST_MAX_BYTES: 10_000, INGEST_CHUNK_ROWS: 10 })
  const big = await postJson(app, [row(0, { content: 'x'.repeat(5000) })], admin.headers)
  t.equal(big.statusCode, 413, 'a JSON body over INGEST_BODY_LIMIT')
  t.equal(big.json().code, 'LOG_PAYLOAD_TOO_LARGE')
  t.equal(big.json().success, false)

  const text = await app.inject({ method: 'POST', url: '/api/log/', headers: { ...admin.headers, 'content-type': 'text/plain' }, payload: 'hello' })
  t.equal(text.statusCode, 415)
  t.equal(text.json().code, 'LOG_UNSUPPORTED_MEDIA_TYPE')

  const longLine = await postNdjson(app, ndjson([row(0), row(1, { content: 'y'.repeat(3000) })]), admin.headers)
  assertBadRequest(t, longLine, /line 2: longer than 2048 bytes/, 'an NDJSON line over INGEST_LINE_LIMIT')

  // The limit is counted line by line, so where it falls does not depend on how the body was split.
  const tooMuch = await postNdjson(app, ndjson(Array.from({ length: 200 }, (_, i) => row(i))), admin.headers)
  t.equal(tooMuch.statusCode, 413, 'an NDJSON body over INGEST_MAX_BYTES')
  const written = await countRows(app)
  t.ok(written > 0 && written % 10 === 0, `whole chunks before the limit stay written (${written})`)
  t.match(tooMuch.json().message, new RegExp(`larger than 10000 bytes; the first ${written} rows were written`))
  await assertRollupsMatchLogs(t, app)
})

t.test('an NDJSON backfill: chunk by chunk, stats exact without folding', async (t) => {
  const { app, admin, alice } = await cast(t, { INGEST_CHUNK_ROWS: 7 })
  const rows = Array.from({ length: 50 }, (_, i) => row(i, { user_id: i % 2 === 0 ? alice.id : 99, content: i === 3 ? 'tab\t newline\n backslash\\ 龘' : `row ${i}` }))
  const body = ndjson(rows).replace('\n', '\r\n') + '\n   \n'
  const res = await postNdjson(app, Readable.from([body.slice(0, 101), body.slice(101, 999), body.slice(999)]), admin.headers)
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { success: true, message: '', data: 50 })

  const stored = await app.db.selectFrom('logs').select(['content', 'quota', 'user_id']).orderBy('id').execute()
  t.strictSame(stored.map((r) => r.quota), rows.map((r) => r.quota), 'every row, in order')
  t.equal(stored[3]!.content, 'tab\t newline\n backslash\\ 龘', 'COPY escaping round-trips')
  const { rows: [pending] } = await sql<{ n: number }>`select count(*)::int8 as n from logs_stat_delta`.execute(app.db)
  t.equal(pending!.n, 0, 'the sums went straight into the rollups: nothing left for the fold')

  const stat = await app.inject({ method: 'GET', url: '/api/log/stat', headers: admin.headers, query: { type: '0', start_timestamp: String(T), end_timestamp: String(T + 10_000) } })
  const quota = rows.filter((r) => r.created_at <= T + 10_000).reduce((s, r) => s + r.quota, 0)
  t.equal(stat.json().data.quota, quota, 'the site stat is exact')
  const self = await app.inject({ method: 'GET', url: '/api/log/self/stat', headers: alice.headers, query: { type: '0' } })
  t.equal(self.json().data.quota, rows.filter((r) => r.user_id === alice.id).reduce((s, r) => s + r.quota, 0), 'a user\'s stat is exact')
  const selfList = await app.inject({ method: 'GET', url: '/api/log/self', headers: alice.headers })
  t.equal(selfList.json().data.total, 25)
  await assertRollupsMatchLogs(t, app)
})

t.test('a bad NDJSON line stops the backfill; the chunks before it stay written', async (t) => {
  const { app, admin } = await cast(t, { INGEST_CHUNK_ROWS: 10 })
  const good = Array.from({ length: 25 }, (_, i) => row(i))
  // Line 27: 25 rows, a blank line, then the bad one.
  const res = await postNdjson(app, ndjson([...good, '', { ...row(25), type: 'consume' }, row(26)]), admin.headers)
  assertBadRequest(t, res, /^line 27: type must be integer; the first 20 rows were written/)
  t.equal(res.headers.connection, 'close', 'the rest of the body is not read')
  const stored = await app.db.selectFrom('logs').select('quota').orderBy('id').execute()
  t.strictSame(stored.map((r) => r.quota), good.slice(0, 20).map((r) => r.quota), 'exactly the first two chunks')

  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['not JSON', '{"user_id":1,"type":2}\n{nope}\n', /line 2: is not valid JSON/],
    ['not UTF-8', Buffer.concat([Buffer.from('{"user_id":1,"type":2,"content":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]), /line 1: is not valid UTF-8/],
    ['an array line', '[1,2]\n', /line 1: row must be object/],
    ['an unknown field', '{"user_id":1,"type":2,"modle_name":"x"}\n', /line 1: unknown field modle_name/],
    ['a lone surrogate, escaped', '{"user_id":1,"type":2,"username":"\\ud800"}\n', /line 1: username must not contain NUL characters or unpaired surrogates/]
  ]
  for (const [label, body, message] of cases) {
    assertBadRequest(t, await postNdjson(app, Readable.from([body]), admin.headers), message, label)
  }
  t.equal(await countRows(app), 20, 'the later failures wrote nothing: their rows never filled a chunk')
  await assertRollupsMatchLogs(t, app)
})

t.test('stats and totals stay exact while batches and a backfill arrive together', async (t) => {
  const { app, admin } = await cast(t, { INGEST_CHUNK_ROWS: 500, STAT_FOLD_INTERVAL_MS: 50 })
  const window = { type: '0', start_timestamp: String(T), end_timestamp: String(T + 10_000_000) }
  const backfill = postNdjson(app, ndjson(Array.from({ length: 6000 }, (_, i) => row(i))), admin.headers)
  const batches = Promise.all(Array.from({ length: 6 }, async (_, b) =>
    await postJson(app, Array.from({ length: 200 }, (_, i) => row(10_000 + b * 200 + i)), admin.headers)))
  // Read while they write: every answer must equal SQL over the same snapshot's rows, which a
  // reader cannot pin; so each one is checked to be a sum of whole statements (monotone, bounded).
  let last = 0
  let reads = 0
  const writing = { done: false }
  const reader = (async () => {
    while (!writing.done) {
      const stat = await app.inject({ method: 'GET', url: '/api/log/stat', headers: admin.headers, query: window })
      const quota: number = stat.json().data.quota
      t.ok(quota >= last, 'the stat never goes back')
      last = quota
      reads++
    }
  })()
  const results = await Promise.all([backfill, batches])
  writing.done = true
  await reader
  t.equal(results[0].json().data, 6000)
  t.strictSame(results[1].map((r) => r.json().data), [200, 200, 200, 200, 200, 200])
  t.ok(reads > 0, `read ${reads} times while writing`)

  const { rows: [sums] } = await sql<{ n: number, quota: number }>`select count(*)::int8 as n, sum(quota)::int8 as quota from logs`.execute(app.db)
  const stat = await app.inject({ method: 'GET', url: '/api/log/stat', headers: admin.headers, query: window })
  t.equal(stat.json().data.quota, sums!.quota, 'the stat equals SQL afterwards')
  const list = await app.inject({ method: 'GET', url: '/api/log/', headers: admin.headers, query: { start_timestamp: window.start_timestamp } })
  t.strictSame([list.json().data.total, list.json().data.total_exact], [sums!.n, true], 'so does the list total')
  await assertRollupsMatchLogs(t, app)
})
