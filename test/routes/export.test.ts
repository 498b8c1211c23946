import t, { type Test } from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql, type Insertable } from 'kysely'
import { buildApp, loggerOptions, type App } from '../../src/app.js'
import type { LogsTable } from '../../src/db/types.js'
import { ExportTooLargeError } from '../../src/errors.js'
import { streamBatches } from '../../src/routes/log/export.js'
import { buildTestApp, createTestDatabase, createUser, insertLogs, testConfig, type TestUser } from '../helpers/app.js'
import { assertBadRequest } from '../helpers/envelope.js'
import { buildAppOn, lockLogs, whileChanged } from '../helpers/session.js'
import { ADMIN_FIELDS, USER_FIELDS } from '../helpers/fields.js'
import { buildCast, type Cast } from '../helpers/labelled.js'

// GET /api/log/export (admin) and /api/log/self/export (user): the rows, their order and filters
// as the list's, CSV and NDJSON encoding, the row cap, and streaming in constant memory.

const T = 1_700_000_000

type Query = Record<string, string>
type Row = Record<string, unknown> & { id: number }

async function get (app: App, url: string, headers: TestUser['headers'] | Record<string, never>, query: Query = {}) {
  return await app.inject({ method: 'GET', url, headers, query })
}

const ndjson = (body: string): Row[] => body === '' ? [] : body.split('\n').filter((line, i, all) => line !== '' || i < all.length - 1).map((line) => JSON.parse(line) as Row)

/** RFC 4180, strictly: the records of a CRLF-terminated CSV body (a bare CR or LF is data only inside quotes). */
function parseCsv (text: string): string[][] {
  const records: string[][] = []
  let i = 0
  while (i < text.length) {
    const record: string[] = []
    for (;;) {
      let field = ''
      if (text[i] === '"') {
        i++
        for (;;) {
          const q = text.indexOf('"', i)
          if (q === -1) throw new Error('unterminated quoted field')
          field += text.slice(i, q)
          if (text[q + 1] === '"') { field += '"'; i = q + 2 } else { i = q + 1; break }
        }
      } else {
        const end = text.slice(i).search(/[,\r\n"]/)
        field = end === -1 ? text.slice(i) : text.slice(i, i + end)
        i += field.length
        if (text[i] === '"') throw new Error(`a quote inside an unquoted field at ${i}`)
      }
      record.push(field)
      if (text[i] === ',') { i++; continue }
      if (text.startsWith('\r\n', i)) { i += 2; break }
      throw new Error(`expected , or CRLF at ${i}, got ${JSON.stringify(text.slice(i, i + 10))}`)
    }
    records.push(record)
  }
  return records
}

interface Fixture extends Cast {
  c1: number
}

/** Rows of alice and bob with every filter column varied, created_at ties included. */
async function seed (t: Test): Promise<Fixture> {
  const cast = await buildCast(t)
  const { app, alice, bob } = cast
  const [channel] = await app.db.insertInto('channels').values({ name: 'chan-one' }).returning('id').execute()
  const c1 = channel!.id
  const row = (u: TestUser, created: number, type: number, f: Partial<Insertable<LogsTable>> = {}): Insertable<LogsTable> =>
    ({ user_id: u.id, username: u.username, created_at: created, type, ...f })
  await insertLogs(app.db, [
    row(alice, T + 40, 2, { token_name: 'tok-a', model_name: 'gpt-4o', group: 'vip', request_id: 'req-1', channel_id: c1, ip: '10.0.0.1', other: '{"a":1}' }),
    row(alice, T + 10, 2, { token_name: 'tok-a', model_name: 'gpt-4', group: 'default', channel_id: c1 }),
    row(bob, T + 30, 2, { token_name: 'tok-b', model_name: 'gpt-4', group: 'vip', request_id: 'req-2', channel_id: 999 }),
    row(alice, T + 30, 1, { group: 'default' }),
    row(bob, T + 20, 3, { token_name: 'tok-a', model_name: 'claude', group: 'default', channel_id: c1 }),
    row(alice, T + 50, 7, { token_name: 'tok-b', model_name: 'claude', group: 'vip' }),
    row(bob, T + 30, 5, { token_name: 'tok-b', model_name: 'gpt-4', group: 'default', channel_id: c1 })
  ])
  return { ...cast, c1 }
}

/** The ids the list route answers for the same filters (every page of 100). */
async function listIds (app: App, url: string, user: TestUser, query: Query): Promise<number[]> {
  const res = await get(app, url, user.headers, { ...query, page_size: '100' })
  if (res.statusCode !== 200) throw new Error(res.body)
  return res.json().data.items.map((i: Row) => i.id)
}

t.test('admin export: CSV, newest first, and headers', async (t) => {
  const fx = await seed(t)
  const { app, admin } = fx

  t.test('a CSV attachment with a header row, then the list\'s rows in the list\'s order', async (t) => {
    const res = await get(app, '/api/log/export', admin.headers)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'text/csv; charset=utf-8')
    t.match(res.headers['content-disposition'], /^attachment; filename="logs-[0-9]{10}\.csv"$/)
    t.equal(res.headers['cache-control'], 'no-store')
    t.ok(res.body.endsWith('\r\n'), 'CRLF after the last record')
    const [header, ...records] = parseCsv(res.body)
    t.strictSame([...header!].sort(), ADMIN_FIELDS, 'the header names the admin fields')
    t.equal(header![header!.length - 1], 'channel_name', 'channel_name last, as the join adds it')
    const col = (name: string) => header!.indexOf(name)
    t.strictSame(records.map((r) => Number(r[col('id')])), await listIds(app, '/api/log/', admin, {}), 'rows as the list orders them')
    const created = records.map((r) => Number(r[col('created_at')]))
    t.strictSame(created, [...created].sort((a, b) => b - a), 'created_at descending')
    const first = records[0]!
    t.equal(first[col('type')], '7')
    t.equal(first[col('is_stream')], 'false')
    const withChannel = records.find((r) => r[col('channel_id')] === String(fx.c1))!
    t.equal(withChannel[col('channel_name')], 'chan-one', 'channel_name from channels')
    t.equal(records.find((r) => r[col('channel_id')] === '999')![col('channel_name')], '', 'empty for an unknown channel')
  })

  t.test('NDJSON: one admin item per line, the list\'s items exactly', async (t) => {
    const res = await get(app, '/api/log/export', admin.headers, { format: 'ndjson' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'application/x-ndjson')
    t.match(res.headers['content-disposition'], /^attachment; filename="logs-[0-9]{10}\.ndjson"$/)
    t.ok(res.body.endsWith('\n'))
    const rows = ndjson(res.body)
    for (const row of rows) t.strictSame(Object.keys(row).sort(), ADMIN_FIELDS)
    const list = (await get(app, '/api/log/', admin.headers, { page_size: '100' })).json().data.items
    t.strictSame(rows, list, 'the same items, field for field')
  })

  t.test('every filter, alone and combined, selects what the list selects', async (t) => {
    const queries: Query[] = [
      { type: '2' }, { type: '0' }, { type: '4' }, { start_timestamp: String(T + 30) }, { end_timestamp: String(T + 30) },
      { start_timestamp: String(T + 20), end_timestamp: String(T + 30) }, { token_name: 'tok-a' }, { model_name: 'gpt-4' },
      { group: 'vip' }, { request_id: 'req-2' }, { username: 'alice' }, { channel: String(fx.c1) }, { channel: '0' },
      { type: '2', username: 'alice' }, { model_name: 'gpt-4', channel: String(fx.c1), group: 'default' },
      { token_name: '', model_name: '', group: '' }, { username: 'nobody' }
    ]
    for (const query of queries) {
      const res = await get(app, '/api/log/export', admin.headers, { ...query, format: 'ndjson' })
      t.equal(res.statusCode, 200)
      t.strictSame(ndjson(res.body).map((r) => r.id), await listIds(app, '/api/log/', admin, query), JSON.stringify(query))
    }
  })

  t.test('nothing matches: the header row alone, or an empty NDJSON body', async (t) => {
    const csv = await get(app, '/api/log/export', admin.headers, { username: 'nobody' })
    t.equal(csv.statusCode, 200)
    t.strictSame(parseCsv(csv.body).length, 1)
    const lines = await get(app, '/api/log/export', admin.headers, { username: 'nobody', format: 'ndjson' })
    t.equal(lines.statusCode, 200)
    t.equal(lines.body, '')
  })

  t.test('bom=true starts a CSV with a UTF-8 byte order mark, and only a CSV', async (t) => {
    const csv = await get(app, '/api/log/export', admin.headers, { bom: 'true' })
    t.equal(csv.rawPayload.subarray(0, 3).toString('hex'), 'efbbbf')
    t.ok(csv.body.startsWith('\uFEFFid,'))
    const plain = await get(app, '/api/log/export', admin.headers)
    t.ok(plain.body.startsWith('id,'), 'no BOM by default')
    const lines = await get(app, '/api/log/export', admin.headers, { bom: 'true', format: 'ndjson' })
    t.ok(lines.body.startsWith('{'), 'no BOM in NDJSON')
  })

  t.test('HEAD does not run an export', async (t) => {
    t.equal((await app.inject({ method: 'HEAD', url: '/api/log/export', headers: admin.headers })).statusCode, 404)
  })

  t.test('bad parameters are 400 envelopes, not attachments', async (t) => {
    for (const [query, name] of [[{ format: 'xlsx' }, /format/], [{ type: '9' }, /type/], [{ start_timestamp: '20', end_timestamp: '10' }, /start_timestamp/]] as const) {
      const res = await get(app, '/api/log/export', admin.headers, query)
      assertBadRequest(t, res, name, JSON.stringify(query))
      t.equal(res.headers['content-disposition'], undefined, 'no attachment')
      t.match(res.headers['content-type'], /application\/json/)
    }
  })
})

t.test('self export: the caller\'s rows, the user fields only', async (t) => {
  const fx = await seed(t)
  const { app, alice, bob } = fx

  t.test('NDJSON lines carry exactly the user fields, the caller\'s rows only', async (t) => {
    const res = await get(app, '/api/log/self/export', alice.headers, { format: 'ndjson' })
    t.equal(res.statusCode, 200)
    const rows = ndjson(res.body)
    t.equal(rows.length, 4)
    for (const row of rows) {
      t.strictSame(Object.keys(row).sort(), USER_FIELDS)
      t.equal(row.user_id, alice.id)
    }
    t.notMatch(res.body, /10\.0\.0\.1|chan-one|"other"|channel|username/, 'nothing of the admin fields')
    const list = (await get(app, '/api/log/self', alice.headers, { page_size: '100' })).json().data.items
    t.strictSame(rows, list, 'the list\'s items exactly')
  })

  t.test('the CSV header names the user fields only', async (t) => {
    const res = await get(app, '/api/log/self/export', bob.headers)
    t.equal(res.statusCode, 200)
    const [header, ...records] = parseCsv(res.body)
    t.strictSame([...header!].sort(), USER_FIELDS)
    t.equal(records.length, 3)
    t.notMatch(res.body, /10\.0\.0\.1|chan-one|alice/)
  })

  t.test('the self filters apply as on /self; username and channel are ignored', async (t) => {
    const queries: Query[] = [
      { type: '2' }, { start_timestamp: String(T + 30) }, { end_timestamp: String(T + 20) }, { token_name: 'tok-a' },
      { model_name: 'claude' }, { group: 'vip' }, { request_id: 'req-1' }, { username: 'bob' }, { channel: String(fx.c1) }
    ]
    for (const query of queries) {
      const res = await get(app, '/api/log/self/export', alice.headers, { ...query, format: 'ndjson' })
      t.equal(res.statusCode, 200)
      t.strictSame(ndjson(res.body).map((r) => r.id), await listIds(app, '/api/log/self', alice, query), JSON.stringify(query))
    }
    const all = await get(app, '/api/log/self/export', alice.headers, { username: 'bob', format: 'ndjson' })
    t.equal(ndjson(all.body).length, 4, 'username=bob still exports alice\'s rows')
  })

  t.test('a user cannot call the admin export; nobody exports without credentials', async (t) => {
    const res = await get(app, '/api/log/export', alice.headers)
    t.equal(res.statusCode, 403)
    t.match(res.json(), { success: false, code: 'LOG_FORBIDDEN' })
    t.equal((await get(app, '/api/log/self/export', {})).statusCode, 401)
    t.equal((await get(app, '/api/log/export', {})).statusCode, 401)
  })
})

t.test('CSV encoding: RFC 4180 quoting, UTF-8, formulas neutralised in text only', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  const texts = [
    'a,b', 'say "hi"', 'line1\r\nline2', 'lf\nonly', 'cr\ronly', '请求超时，请重试 (模型倍率 2.5)', 'emoji 🚀 and ü',
    '=SUM(A1)', '+1', '-1', '@x', '\tx', '=HYPERLINK("http://evil.test","click")', 'plain', ''
  ]
  // created_at descending in the order given, so the records come back in this order
  await insertLogs(app.db, texts.map((content, i) => ({ user_id: admin.id, created_at: T + 100 - i, type: 2, content, quota: -i, model_name: i === 8 ? '-gpt' : 'gpt' })))

  const res = await get(app, '/api/log/export', admin.headers)
  t.equal(res.statusCode, 200)
  t.ok(res.rawPayload.toString('utf8') === res.body && res.body.includes('请求超时，请重试'), 'UTF-8, CJK as it is')
  const [header, ...records] = parseCsv(res.body)
  const col = (name: string) => header!.indexOf(name)
  t.equal(records.length, texts.length)
  const neutral = new Set(['=', '+', '-', '@', '\t', '\r'])
  texts.forEach((text, i) => {
    const want = text !== '' && neutral.has(text[0]!) ? `'${text}` : text
    t.equal(records[i]![col('content')], want, `content ${JSON.stringify(text)}`)
  })
  t.equal(records[8]![col('model_name')], "'-gpt", 'every text column is neutralised')
  t.strictSame(records.map((r) => r[col('quota')]), texts.map((_, i) => String(-i)), 'negative numbers stay numbers')

  t.test('the quoting, byte for byte', async (t) => {
    t.match(res.body, /,"a,b",/)
    t.match(res.body, /,"say ""hi""",/)
    t.match(res.body, /,"line1\r\nline2",/)
    t.match(res.body, /,"'=HYPERLINK\(""http:\/\/evil\.test"",""click""\)",/)
    t.match(res.body, /,'=SUM\(A1\),/, 'neutralised, unquoted when nothing needs quotes')
    t.match(res.body, /,"'\tx",|,'\tx,/)
  })

  t.test('NDJSON carries the text as stored', async (t) => {
    const lines = ndjson((await get(app, '/api/log/export', admin.headers, { format: 'ndjson' })).body)
    t.strictSame(lines.map((r) => r.content), texts)
  })
  t.test('filter values with quotes and backslashes match literally (they are inlined into COPY)', async (t) => {
    const tricky = ["it's", 'back\\slash', "'; drop table logs; --", '$1', '模型']
    const ids = await insertLogs(app.db, tricky.map((model, i) => ({ user_id: admin.id, created_at: T + 200 + i, type: 2, model_name: model })))
    for (const [i, model] of tricky.entries()) {
      const res = await get(app, '/api/log/export', admin.headers, { model_name: model, format: 'ndjson' })
      t.equal(res.statusCode, 200, JSON.stringify(model))
      t.strictSame(ndjson(res.body).map((r) => r.id), [ids[i]], `model_name=${JSON.stringify(model)} finds its row only`)
    }
    const csv = await get(app, '/api/log/export', admin.headers, { model_name: "it's" })
    t.equal(parseCsv(csv.body).length, 2, 'and as CSV')
  })
})

t.test('database failures before the first byte answer the envelope, with the route\'s message', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildAppOn(t, url, { DB_STATEMENT_TIMEOUT_MS: 300 })
  const admin = await createUser(app.db, { role: 10 })
  await insertLogs(app.db, [{ user_id: admin.id, created_at: T, type: 2, content: 'hello' }])

  await whileChanged(t, url, lockLogs, async () => {
    const res = await get(app, '/api/log/export', admin.headers)
    t.equal(res.statusCode, 503, 'a statement timeout')
    t.match(res.json(), { success: false, message: '导出日志失败', code: 'LOG_DB_UNAVAILABLE' })
    t.equal(res.headers['content-disposition'], undefined, 'no attachment')
  })
  const moveContent = { apply: ['alter table logs rename column content to content_moved'], undo: 'alter table logs rename column content_moved to content' }
  // Tries while the 300 ms limit cuts a statement short (the partitioned layout's first statements
  // on a connection open every partition; a busy machine slows them): the failure is what is asserted.
  const retried = async (path: string, query: Record<string, string>) => {
    let res = await get(app, path, admin.headers, query)
    for (let i = 0; i < 5 && res.statusCode === 503; i++) res = await get(app, path, admin.headers, query)
    return res
  }
  await whileChanged(t, url, moveContent, async () => {
    const res = await retried('/api/log/self/export', { format: 'ndjson' })
    t.equal(res.statusCode, 500, 'a failing statement')
    t.match(res.json(), { success: false, message: '导出日志失败', code: 'LOG_INTERNAL' })
    t.notMatch(res.body, /content_moved|copy|select/i, 'no SQL')
  })
  const res = await retried('/api/log/export', { format: 'ndjson' })
  t.equal(res.statusCode, 200, 'answers again afterwards')
  t.equal(ndjson(res.body).length, 1)
})

t.test('the row cap', async (t) => {
  const app = await buildTestApp(t, { EXPORT_MAX_ROWS: 3 })
  const admin = await createUser(app.db, { role: 10 })
  const alice = await createUser(app.db)
  await insertLogs(app.db, [1, 2, 3, 4, 5].map((i) => ({ user_id: alice.id, created_at: T + i, type: 2, model_name: i > 1 ? 'm' : 'n' })))

  t.test('more matches than EXPORT_MAX_ROWS: a 400 before anything is sent, naming the cap', async (t) => {
    for (const [url, user, query] of [['/api/log/export', admin, {}], ['/api/log/self/export', alice, {}], ['/api/log/export', admin, { model_name: 'm' }]] as const) {
      const res = await get(app, url, user.headers, query)
      assertBadRequest(t, res, /at most 3: narrow the window/, `${url} ${JSON.stringify(query)}`)
      t.equal(res.json().code, 'LOG_EXPORT_TOO_LARGE')
      t.equal(res.headers['content-disposition'], undefined)
    }
    t.match((await get(app, '/api/log/export', admin.headers)).json().message, /^5 rows match/, 'an exact count says how many')
  })

  t.test('up to the cap, the export runs', async (t) => {
    const res = await get(app, '/api/log/export', admin.headers, { start_timestamp: String(T + 3), format: 'ndjson' })
    t.equal(res.statusCode, 200)
    t.equal(ndjson(res.body).length, 3)
  })

  t.test('rows that arrive during an export and take it past the cap abort it, never truncate it', async (t) => {
    const log = { debug () {}, info () {} } as unknown as Parameters<typeof streamBatches>[4]
    const batch = (text: string) => ({ text: Buffer.from(text), rows: text.split('\n').length - 1 })
    let ended = false
    async function * batches () {
      try {
        yield batch('2\n1\n')
        yield batch('0\n-1\n')
      } finally {
        ended = true
      }
    }
    const it = batches()
    const out: string[] = []
    const chunks = streamBatches('head\n', await it.next(), it, 3, log)
    await t.rejects(async () => { for await (const chunk of chunks) out.push(chunk.toString()) }, ExportTooLargeError)
    t.strictSame(out, ['head\n', '2\n1\n'], 'the first batch went out, the one past the cap did not')
    t.ok(ended, 'and the batches were ended')
  })
})

/** n rows of one user in one statement, four per second, content with commas and CJK. */
async function insertMany (app: App, userId: number, n: number) {
  await app.db.transaction().execute(async (trx) => {
    // Every index of logs to maintain: longer than the service lets one of its statements run.
    await sql`set local statement_timeout = 0`.execute(trx)
    await insertRows(trx, userId, n)
  })
}

async function insertRows (db: App['db'], userId: number, n: number) {
  await db.insertInto('logs')
    .columns(['user_id', 'username', 'created_at', 'type', 'content', 'model_name', 'token_name', 'quota', 'prompt_tokens', 'completion_tokens', 'ip', 'other', 'request_id'])
    .expression((eb) => eb.selectFrom(sql<{ g: number }>`generate_series(1, ${n})`.as('g')).select([
      sql<number>`${userId}`.as('user_id'), sql<string>`'bulk'`.as('username'), sql<number>`${T} + g / 4`.as('created_at'), sql<number>`2`.as('type'),
      sql<string>`'model ratio 2.50, completion ratio 4.00, 模型倍率 ' || g`.as('content'), sql<string>`'gpt-4o'`.as('model_name'),
      sql<string>`'tok-' || (g % 7)`.as('token_name'), sql<number>`g % 1000`.as('quota'), sql<number>`g % 500`.as('prompt_tokens'),
      sql<number>`g % 300`.as('completion_tokens'), sql<string>`'203.0.113.' || (g % 250)`.as('ip'),
      sql<string>`'{"cache_ratio":0.1,"n":' || g || '}'`.as('other'), sql<string>`'req-' || g`.as('request_id')
    ]))
    .execute()
}

t.test('a large export streams completely in bounded memory, and stops when the client goes away', async (t) => {
  const N = 200_000
  const lines: Array<{ msg?: string, rows?: number }> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  const url = await createTestDatabase(t)
  // A short statement timeout, for the failure after the first byte; each batch is far shorter.
  const app = await buildApp({ ...testConfig({ LOG_LEVEL: 'debug', DB_STATEMENT_TIMEOUT_MS: 2000 }), DATABASE_URL: url }, { logger: { ...loggerOptions('debug'), stream } })
  t.teardown(() => app.close())
  const admin = await createUser(app.db, { role: 10 })
  await insertMany(app, admin.id, N)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const batchesLogged = () => lines.filter((l) => l.msg === 'export batch').length
  const request = (path: string) => http.get({ host: '127.0.0.1', port, path, headers: admin.headers })

  t.test(`${N.toLocaleString('en-US')} rows as CSV: every row, in order, RSS sampled throughout`, async (t) => {
    global.gc?.()
    const baseline = process.memoryUsage().rss
    let peak = baseline
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 5)
    let records = 0
    let bytes = 0
    let ordered = true
    let previous: [number, number] = [Infinity, Infinity]
    let tail = ''
    try {
      await new Promise<void>((resolve, reject) => {
        request('/api/log/export?format=csv').on('response', (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`))
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            bytes += chunk.length
            const text = tail + chunk
            const end = text.lastIndexOf('\r\n')
            if (end === -1) {
              tail = text
              return
            }
            tail = text.slice(end + 2)
            // No field of these rows holds a line break: a record is a line.
            for (const line of text.slice(0, end).split('\r\n')) {
              if (line.startsWith('id,')) continue
              records++
              const [id, , created] = line.split(',', 3)
              const key: [number, number] = [Number(created), Number(id)]
              if (key[0] > previous[0] || (key[0] === previous[0] && key[1] >= previous[1])) ordered = false
              previous = key
            }
          })
          res.on('end', resolve)
          res.on('error', reject)
        }).on('error', reject)
      })
    } finally {
      clearInterval(sampler)
    }
    t.equal(records, N, 'every row')
    t.equal(tail, '', 'ends with CRLF')
    t.ok(ordered, 'newest first throughout')
    const growthMb = (peak - baseline) / 1024 / 1024
    t.comment(`${(bytes / 1024 / 1024).toFixed(1)} MB of CSV; RSS ${Math.round(baseline / 1024 / 1024)} MB before, peak growth ${growthMb.toFixed(1)} MB`)
    t.ok(growthMb < 100, `RSS grew ${growthMb.toFixed(1)} MB while streaming ${(bytes / 1024 / 1024).toFixed(0)} MB (bound 100 MB)`)
    t.match(lines.find((l) => l.msg === 'export finished'), { rows: N })
  })

  t.test('a client that stops reading stops the queries; one that leaves ends them', async (t) => {
    lines.length = 0
    const req = request('/api/log/export?format=ndjson')
    req.on('error', () => {}) // destroyed on purpose
    const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
    t.equal(res.statusCode, 200)
    await new Promise((resolve) => res.once('data', resolve))
    res.pause()

    // Whatever the socket buffers hold, the service then waits for the client. Stalled means no
    // new batch for 1.5 s: on a loaded machine one batch can take longer than a few hundred ms.
    let stalled = batchesLogged()
    let quietSince = Date.now()
    for (let i = 0; i < 200 && Date.now() - quietSince < 1500; i++) {
      await sleep(100)
      const now = batchesLogged()
      if (now !== stalled) quietSince = Date.now()
      stalled = now
    }
    t.ok(stalled < N / 5000, `paused after ${stalled} of ${N / 5000} batches`)
    await sleep(1500)
    t.equal(batchesLogged(), stalled, 'no batch while the client does not read')

    req.destroy()
    let stopped: { rows?: number } | undefined
    for (let i = 0; i < 100 && stopped === undefined; i++) {
      await sleep(20)
      stopped = lines.find((l) => l.msg === 'export stopped before its end')
    }
    t.ok(stopped, 'the export ends when the client leaves')
    t.ok((stopped?.rows ?? N) < N, `after ${stopped?.rows} rows`)
    const after = batchesLogged()
    await sleep(300)
    t.equal(batchesLogged(), after, 'and no batch follows')
    t.notOk(lines.some((l) => l.msg === 'export finished'), 'it did not run to the end')
  })

  t.test('a failure after the first byte aborts the response: the body never ends as if complete', async (t) => {
    lines.length = 0
    const req = request('/api/log/export?format=ndjson')
    const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve))
    t.equal(res.statusCode, 200)
    await new Promise((resolve) => res.once('data', resolve))
    res.pause()
    // The next batch then waits for the lock until the statement timeout cancels it.
    let outcome = ''
    await whileChanged(t, url, lockLogs, async () => {
      outcome = await new Promise<string>((resolve) => {
        res.on('end', () => resolve('end'))
        res.on('aborted', () => resolve('aborted'))
        res.on('error', () => resolve('error'))
        res.resume()
      })
    })
    t.not(outcome, 'end', `the client sees the response cut short (${outcome})`)
    t.ok(lines.some((l) => l.msg === 'export stopped before its end'))
  })
})
