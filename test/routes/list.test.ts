import t, { type Test } from 'tap'
import type { Insertable } from 'kysely'
import type { App } from '../../src/app.js'
import type { LogsTable } from '../../src/db/types.js'
import { buildTestApp, createUser, insertLogs, type TestUser } from '../helpers/app.js'
import { assertBadRequest } from '../helpers/envelope.js'
import { ADMIN_FIELDS, USER_FIELDS } from '../helpers/fields.js'
import { buildCast, insertLabelled, insertOrdered, type Cast } from '../helpers/labelled.js'

// GET /api/log/ (admin) and GET /api/log/self (user): envelope, order, every filter, paging, item shape.

const T = 1_700_000_000

type Query = Record<string, string>
type Tap = Test
interface Item { id: number, [key: string]: unknown }

async function get (app: App, url: string, headers: TestUser['headers'], query: Query = {}) {
  return await app.inject({ method: 'GET', url, headers, query })
}

interface Fixture extends Cast {
  id: Record<string, number>
  c1: number
  c2: number
}

/**
 * Eight rows, inserted in an order unrelated to created_at, with three ties at T+30.
 * Newest first the whole table reads: f e g c d b a h (ids: e1 a2 d3 c4 b5 f6 g7 h8).
 */
async function seed (t: Tap): Promise<Fixture> {
  const cast = await buildCast(t)
  const { app, alice, bob } = cast
  const carol = await createUser(app.db, { username: 'carol' })
  const channels = await app.db.insertInto('channels').values([{ name: 'chan-one' }, { name: 'chan-two' }]).returning('id').execute()
  const c1 = channels[0]!.id
  const c2 = channels[1]!.id
  const row = (u: TestUser, created: number, type: number, f: Partial<Insertable<LogsTable>>): Insertable<LogsTable> =>
    ({ user_id: u.id, username: u.username, created_at: created, type, ...f })
  const labelled: Array<[string, Insertable<LogsTable>]> = [
    ['e', row(alice, T + 40, 2, { token_name: 'tok-a', model_name: 'gpt-4o', group: 'vip', request_id: 'req-1-suffix' })],
    ['a', row(alice, T + 10, 2, { token_name: 'tok-a', model_name: 'gpt-4', group: 'default', request_id: 'req-1', channel_id: c1 })],
    ['d', row(bob, T + 30, 2, { token_name: 'tok-b', model_name: 'gpt-4', group: 'vip', request_id: 'req-2', channel_id: c2 })],
    ['c', row(alice, T + 30, 1, { group: 'default' })],
    ['b', row(bob, T + 20, 3, { token_name: 'tok-a', model_name: 'gpt%', group: 'default', request_id: 'req%', channel_id: c1 })],
    ['f', row(alice, T + 50, 7, { token_name: 'tok%', model_name: 'claude', group: 'vip', request_id: 'REQ-1', channel_id: 999 })],
    ['g', row(bob, T + 30, 5, { token_name: 'tok-b', model_name: 'gpt-4', group: 'default', request_id: 'req-3', channel_id: c2 })],
    ['h', row(carol, T + 5, 6, { token_name: 'tok-c', model_name: 'gpt-4-0613', group: 'svip', request_id: 'req-4' })]
  ]
  return { ...cast, id: await insertLabelled(app.db, labelled), c1, c2 }
}

const idsOf = (fx: Fixture, labels: string) => [...labels].map((l) => fx.id[l])

/** GET url as user: a 200 whose items are exactly the labelled rows, in that order, and whose total counts them. */
async function listRows (t: Tap, fx: Fixture, url: string, user: TestUser, query: Query, labels: string) {
  const res = await get(fx.app, url, user.headers, query)
  t.equal(res.statusCode, 200, `${JSON.stringify(query)}: ${res.statusCode === 200 ? 'ok' : res.body}`)
  const body = res.json()
  t.strictSame(body.data?.items.map((i: Item) => i.id), idsOf(fx, labels), `rows for ${JSON.stringify(query)}`)
  t.equal(body.data?.total, labels.length, `total for ${JSON.stringify(query)}`)
}

/** For each parameter alone, each value it is given and the rows that answer it. */
type Answers = Record<string, Record<string, string>>

async function listEach (t: Tap, fx: Fixture, url: string, user: TestUser, answers: Answers) {
  for (const [param, byValue] of Object.entries(answers)) {
    for (const [value, labels] of Object.entries(byValue)) await listRows(t, fx, url, user, { [param]: value }, labels)
  }
}

t.test('admin list: order and every filter', async (t) => {
  const fx = await seed(t)
  const { app, admin } = fx
  const want = (labels: string) => idsOf(fx, labels)
  const expectRows = (t: Tap, query: Query, labels: string) => listRows(t, fx, '/api/log/', admin, query, labels)

  t.test('envelope; newest first by created_at desc, then id desc', async (t) => {
    const res = await get(app, '/api/log/', admin.headers)
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /application\/json/)
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['data', 'message', 'success'])
    t.equal(body.success, true)
    t.equal(body.message, '')
    t.strictSame(Object.keys(body.data).sort(), ['items', 'next_cursor', 'page', 'page_size', 'total', 'total_exact'])
    t.equal(body.data.page, 1)
    t.equal(body.data.page_size, 20)
    t.equal(body.data.total, 8)
    t.strictSame(body.data.items.map((i: Item) => i.id), want('fegcdbah'))
    const created = body.data.items.map((i: Item) => i.created_at)
    t.strictSame(created, [T + 50, T + 40, T + 30, T + 30, T + 30, T + 20, T + 10, T + 5])
  })

  // Exact-match filters, one at a time: the rows each value leaves, newest first.
  const exact: Array<[string, Answers]> = [
    ['type filters one type, 0 means every type', { type: { 2: 'eda', 1: 'c', 3: 'b', 4: '', 5: 'g', 6: 'h', 7: 'f', 0: 'fegcdbah' } }],
    ['token_name is an exact match', { token_name: { 'tok-a': 'eba', 'tok-b': 'gd', tok: '', 'tok%': 'f', tok_a: '' } }],
    ['model_name is an exact match: gpt-4 is not gpt-4o, % is literal', { model_name: { 'gpt-4': 'gda', 'gpt-4o': 'e', 'gpt%': 'b', gpt: '', 'GPT-4': '', 'gpt-4_': '' } }],
    ['group is an exact match', { group: { vip: 'fed', default: 'gcba', svip: 'h', vi: '' } }],
    ['request_id is an exact match, not a prefix, case and % included', { request_id: { 'req-1': 'a', 'REQ-1': 'f', 'req%': 'b', req: '', 'req-1-suffix': 'e' } }],
    ['username is an exact match', { username: { alice: 'feca', bob: 'gdb', ali: '', ALICE: '', 'ali%': '' } }],
    ['channel filters by channel id, 0 means every channel', { channel: { [fx.c1]: 'ba', [fx.c2]: 'gd', 999: 'f', 0: 'fegcdbah', 12345: '' } }]
  ]
  for (const [name, answers] of exact) t.test(name, (t) => listEach(t, fx, '/api/log/', admin, answers))

  t.test('type outside 0..7 is a 400 naming type', async (t) => {
    for (const type of ['8', '-1']) {
      assertBadRequest(t, await get(app, '/api/log/', admin.headers, { type }), /type/, `type=${type}`)
    }
  })

  t.test('start_timestamp and end_timestamp are inclusive at the exact boundary', async (t) => {
    await expectRows(t, { start_timestamp: String(T + 30) }, 'fegcd')
    await expectRows(t, { start_timestamp: String(T + 31) }, 'fe')
    await expectRows(t, { end_timestamp: String(T + 30) }, 'gcdbah')
    await expectRows(t, { end_timestamp: String(T + 29) }, 'bah')
    await expectRows(t, { start_timestamp: String(T + 30), end_timestamp: String(T + 30) }, 'gcd')
    await expectRows(t, { start_timestamp: String(T + 20), end_timestamp: String(T + 40) }, 'egcdb')
    await expectRows(t, { start_timestamp: String(T + 51) }, '')
    await expectRows(t, { end_timestamp: String(T + 4) }, '')
    await expectRows(t, { start_timestamp: '0' }, 'fegcdbah')
  })

  t.test('start after end is a 400 naming start_timestamp', async (t) => {
    const res = await get(app, '/api/log/', admin.headers, { start_timestamp: String(T + 31), end_timestamp: String(T + 30) })
    assertBadRequest(t, res, /start_timestamp/)
  })

  t.test('filters combine with AND', async (t) => {
    await expectRows(t, { type: '2', model_name: 'gpt-4' }, 'da')
    await expectRows(t, { type: '2', username: 'alice' }, 'ea')
    await expectRows(t, { start_timestamp: String(T + 10), end_timestamp: String(T + 30), group: 'default' }, 'gcba')
    await expectRows(t, { channel: String(fx.c2), username: 'bob', type: '5' }, 'g')
    await expectRows(t, { token_name: 'tok-a', username: 'bob', model_name: 'gpt%', request_id: 'req%', group: 'default', channel: String(fx.c1), type: '3', start_timestamp: String(T + 20), end_timestamp: String(T + 20) }, 'b')
    await expectRows(t, { token_name: 'tok-a', username: 'bob', type: '2' }, '')
    await expectRows(t, { model_name: 'gpt-4', start_timestamp: String(T + 31) }, '')
  })

  t.test('an empty string filter is no filter', async (t) => {
    await expectRows(t, { token_name: '', model_name: '', group: '', request_id: '', username: '' }, 'fegcdbah')
    await expectRows(t, { token_name: '', model_name: 'gpt-4', group: '' }, 'gda')
  })

  // new-api's own web UI sends every filter, empty ones included (`channel=&type=0&...`).
  t.test('an empty numeric filter (channel=, type=) is no filter either', async (t) => {
    await expectRows(t, { channel: '' }, 'fegcdbah')
    await expectRows(t, { type: '' }, 'fegcdbah')
  })

  t.test('total counts every matching row, not just the page', async (t) => {
    const res = await get(app, '/api/log/', admin.headers, { page_size: '2' })
    t.equal(res.statusCode, 200)
    t.match(res.json().data, { total: 8, page: 1, page_size: 2 })
    t.strictSame(res.json().data.items.map((i: Item) => i.id), want('fe'))
    const filtered = await get(app, '/api/log/', admin.headers, { page_size: '1', p: '2', username: 'alice' })
    t.match(filtered.json().data, { total: 4, page: 2, page_size: 1 })
    t.strictSame(filtered.json().data.items.map((i: Item) => i.id), want('e'))
  })
})

t.test('self list: only the caller\'s rows, whatever the query says', async (t) => {
  const fx = await seed(t)
  const { app, alice, bob } = fx
  const want = (labels: string) => idsOf(fx, labels)
  const expectRows = (t: Tap, user: TestUser, query: Query, labels: string) => listRows(t, fx, '/api/log/self', user, query, labels)

  t.test('envelope and own rows newest first', async (t) => {
    const res = await get(app, '/api/log/self', alice.headers)
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['data', 'message', 'success'])
    t.match(body, { success: true, message: '', data: { total: 4, page: 1, page_size: 20 } })
    t.strictSame(body.data.items.map((i: Item) => i.id), want('feca'))
    t.ok(body.data.items.every((i: Item) => i.user_id === alice.id))
    await expectRows(t, bob, {}, 'gdb')
  })

  t.test('the self filters work on the caller\'s rows', async (t) => {
    await listEach(t, fx, '/api/log/self', alice, {
      type: { 2: 'ea', 0: 'feca' },
      start_timestamp: { [T + 10]: 'feca' },
      end_timestamp: { [T + 10]: 'a' },
      token_name: { 'tok-a': 'ea' },
      model_name: { 'gpt-4': 'a' },
      group: { vip: 'fe' },
      request_id: { 'req-1': 'a', 'req-2': '' }
    })
    await expectRows(t, alice, { start_timestamp: String(T + 30), end_timestamp: String(T + 40) }, 'ec')
    await expectRows(t, bob, { token_name: 'tok-a' }, 'b')
    await expectRows(t, alice, { token_name: '', model_name: '', group: '', request_id: '' }, 'feca')
  })

  t.test('username is ignored on /self', async (t) => {
    await expectRows(t, alice, { username: 'bob' }, 'feca')
    await expectRows(t, alice, { username: 'alice' }, 'feca')
  })

  t.test('channel is ignored on /self, even when it is not a number', async (t) => {
    await expectRows(t, alice, { channel: String(fx.c1) }, 'feca')
    await expectRows(t, bob, { channel: '999' }, 'gdb')
    await expectRows(t, alice, { channel: 'abc' }, 'feca')
  })

  t.test('start after end is a 400 naming start_timestamp', async (t) => {
    assertBadRequest(t, await get(app, '/api/log/self', alice.headers, { start_timestamp: '11', end_timestamp: '10' }), /start_timestamp/)
  })
})

t.test('item shapes', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 100, username: 'root' })
  const alice = await createUser(app.db, { username: 'alice' })
  const [channel] = await app.db.insertInto('channels').values({ name: 'openai-main' }).returning('id').execute()
  // A row with every column set: the columns a user sees, and those only an admin sees.
  const userPart = {
    user_id: alice.id,
    created_at: T + 3,
    type: 2,
    content: '模型倍率 2.5，补全倍率 1',
    token_name: 'my-key',
    model_name: 'gpt-4o-mini',
    quota: 1234,
    prompt_tokens: 100,
    completion_tokens: 200,
    use_time: 7,
    is_stream: true,
    group: 'vip',
    request_id: 'req-abc'
  }
  const adminPart = { username: 'alice', channel_id: channel!.id, token_id: 42, ip: '203.0.113.9', other: '{"admin_info":{"use_channel":["3"]},"cache_ratio":0.5}' }
  const [full, unknownChannel, noChannel] = await insertLogs(app.db, [
    { ...userPart, ...adminPart },
    { user_id: alice.id, created_at: T + 2, type: 2, channel_id: 4242 },
    { user_id: alice.id, created_at: T + 1, type: 1 }
  ])

  /** GET url as user: the three rows, each with exactly these fields, the full row first as given. */
  async function expectItems (t: Tap, url: string, user: TestUser, fields: string[], first: Record<string, unknown>) {
    const res = await get(app, url, user.headers)
    t.equal(res.statusCode, 200)
    const items = res.json().data.items
    t.equal(items.length, 3)
    for (const item of items) t.strictSame(Object.keys(item).sort(), fields)
    t.strictSame(items[0], first)
    return { body: res.body, items }
  }

  t.test('admin item: exact field list and values, channel_name from channels', async (t) => {
    const { items } = await expectItems(t, '/api/log/', admin, ADMIN_FIELDS, { id: full, ...userPart, ...adminPart, channel_name: 'openai-main' })
    t.equal(typeof items[0].other, 'string', 'other is the stored JSON string, not an object')
    t.match(items[1], { id: unknownChannel, channel_id: 4242, channel_name: '' })
    t.match(items[2], { id: noChannel, channel_id: 0, channel_name: '', other: '', is_stream: false, quota: 0 })
  })

  t.test('user item: exact field list, no channel, ip or other', async (t) => {
    const { body } = await expectItems(t, '/api/log/self', alice, USER_FIELDS, { id: full, ...userPart })
    t.notMatch(body, /203\.0\.113\.9|openai-main|admin_info|channel/)
  })
})

t.test('numbers are JSON numbers, even past 2^32', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  const alice = await createUser(app.db, { username: 'alice' })
  const big = Number.MAX_SAFE_INTEGER
  await insertLogs(app.db, [{
    id: big,
    user_id: alice.id,
    created_at: big,
    type: 2,
    quota: big,
    prompt_tokens: 2_147_483_647,
    completion_tokens: 2_147_483_647,
    use_time: 2_147_483_647,
    token_id: 2_147_483_647,
    channel_id: 2_147_483_647
  }, { user_id: alice.id, created_at: 4_102_444_800, type: 2, quota: 5_000_000_000 }])

  for (const [url, user] of [['/api/log/', admin], ['/api/log/self', alice]] as const) {
    t.test(url, async (t) => {
      const res = await get(app, url, user.headers)
      t.equal(res.statusCode, 200)
      t.match(res.body, `"id":${big},`)
      t.match(res.body, `"created_at":${big},`)
      t.match(res.body, `"quota":${big},`)
      t.match(res.body, '"prompt_tokens":2147483647,')
      t.match(res.body, '"created_at":4102444800,')
      t.match(res.body, '"quota":5000000000,')
      t.match(res.body, '"total":2,')
      t.notMatch(res.body, /"(id|created_at|quota|total|page|page_size|user_id)":"/)
      const data = res.json().data
      t.equal(data.items[0].id, big)
      t.equal(data.items[0].created_at, big)
      t.equal(data.items[0].quota, big)
      t.equal(data.items[1].quota, 5_000_000_000)
      t.equal(data.total, 2)
    })
  }

  t.test('a timestamp filter at 2^53-1 is inclusive', async (t) => {
    const res = await get(app, '/api/log/', admin.headers, { start_timestamp: String(big), end_timestamp: String(big) })
    t.equal(res.statusCode, 200)
    t.strictSame(res.json().data.items.map((i: Item) => i.id), [big])
  })
})

t.test('pagination', async (t) => {
  const { app, admin, alice, bob } = await buildCast(t)
  // 45 rows of alice's, three per second, inserted in a scrambled order; 5 of bob's, older.
  const rows: Array<Insertable<LogsTable>> = []
  for (let i = 0; i < 45; i++) {
    const k = (i * 7) % 45
    rows.push({ user_id: alice.id, created_at: T + 100 + Math.floor(k / 3), type: 2, content: `row ${k}` })
  }
  for (let i = 0; i < 5; i++) rows.push({ user_id: bob.id, created_at: T + i, type: 2 })
  const newestFirst = await insertOrdered(app.db, rows)
  const aliceOrder = newestFirst([...Array(45).keys()])
  const allOrder = newestFirst([...Array(50).keys()])
  t.not(aliceOrder.join(), [...aliceOrder].sort((x, y) => y - x).join(), 'fixture: id order differs from created_at order')

  const cases = [
    { name: 'admin', url: '/api/log/', user: admin, order: allOrder },
    { name: 'self', url: '/api/log/self', user: alice, order: aliceOrder }
  ]
  for (const c of cases) {
    t.test(`${c.name}: defaults p=1, page_size=20`, async (t) => {
      const res = await get(app, c.url, c.user.headers)
      t.equal(res.statusCode, 200)
      const data = res.json().data
      t.equal(data.page, 1)
      t.equal(data.page_size, 20)
      t.equal(data.total, c.order.length)
      t.strictSame(data.items.map((i: Item) => i.id), c.order.slice(0, 20))
    })

    t.test(`${c.name}: page 2, the last partial page and a page past the end`, async (t) => {
      const p2 = (await get(app, c.url, c.user.headers, { p: '2' })).json().data
      t.match(p2, { page: 2, page_size: 20, total: c.order.length })
      t.strictSame(p2.items.map((i: Item) => i.id), c.order.slice(20, 40))
      const p3 = (await get(app, c.url, c.user.headers, { p: '3' })).json().data
      t.strictSame(p3.items.map((i: Item) => i.id), c.order.slice(40, 60))
      t.equal(p3.total, c.order.length)
      const past = await get(app, c.url, c.user.headers, { p: '4' })
      t.equal(past.statusCode, 200)
      t.strictSame(past.json(), { success: true, message: '', data: { items: [], total: c.order.length, total_exact: true, page: 4, page_size: 20, next_cursor: null } })
      const far = await get(app, c.url, c.user.headers, { p: '1000000', page_size: '100' })
      t.strictSame(far.json().data, { items: [], total: c.order.length, total_exact: true, page: 1000000, page_size: 100, next_cursor: null })
    })

    t.test(`${c.name}: page_size 1 and 100 are the bounds`, async (t) => {
      const one = (await get(app, c.url, c.user.headers, { page_size: '1', p: '7' })).json().data
      t.match(one, { page: 7, page_size: 1, total: c.order.length })
      t.strictSame(one.items.map((i: Item) => i.id), [c.order[6]])
      const hundred = (await get(app, c.url, c.user.headers, { page_size: '100' })).json().data
      t.match(hundred, { page: 1, page_size: 100, total: c.order.length })
      t.strictSame(hundred.items.map((i: Item) => i.id), c.order)
      const pages: number[] = []
      for (let p = 1; p <= 4; p++) {
        const page = (await get(app, c.url, c.user.headers, { page_size: '13', p: String(p) })).json().data
        pages.push(...page.items.map((i: Item) => i.id))
      }
      t.strictSame(pages, c.order.slice(0, 52), 'pages of 13 tile the list without gaps or repeats')
    })

    t.test(`${c.name}: page_size outside 1..100 or not an integer is a 400 naming page_size`, async (t) => {
      for (const pageSize of ['0', '101', '-1', 'abc', '1.5', '1000']) {
        assertBadRequest(t, await get(app, c.url, c.user.headers, { page_size: pageSize }), /page_size/, `page_size=${pageSize}`)
      }
    })

    t.test(`${c.name}: p below 1 or not an integer is a 400 naming p`, async (t) => {
      for (const p of ['0', '-1', 'abc', '2.5']) {
        assertBadRequest(t, await get(app, c.url, c.user.headers, { p }), /\bp\b/, `p=${p}`)
      }
    })
  }
})

t.test('paths answer with and without a trailing slash', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  const alice = await createUser(app.db)
  await insertLogs(app.db, [
    { user_id: alice.id, created_at: T, type: 2 },
    { user_id: admin.id, created_at: T + 1, type: 3 }
  ])
  const cases: Array<[string, TestUser, number]> = [
    ['/api/log', admin, 2],
    ['/api/log/', admin, 2],
    ['/api/log?type=3', admin, 1],
    ['/api/log/?type=3', admin, 1],
    ['/api/log/self', alice, 1],
    ['/api/log/self/', alice, 1],
    ['/api/log/self?type=3', alice, 0],
    ['/api/log/self/?type=2', alice, 1]
  ]
  for (const [url, user, total] of cases) {
    const res = await app.inject({ method: 'GET', url, headers: user.headers })
    t.equal(res.statusCode, 200, url)
    t.match(res.json(), { success: true, message: '', data: { total, page: 1, page_size: 20 } }, url)
    t.equal(res.json().data.items.length, total, url)
  }
})
