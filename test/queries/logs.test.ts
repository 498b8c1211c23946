import t from 'tap'
import { sql, type Insertable } from 'kysely'
import type { LogsTable } from '../../src/db/types.js'
import { COUNT_LIMITS } from '../../src/queries/logs/count-strategy.js'
import { whereLogs, type LogFilter } from '../../src/queries/logs/filter.js'
import { adminPage, listAdminLogs, listUserLogs, userPage } from '../../src/queries/logs/page.js'
import { escapeLike, searchAdminLogs, searchUserLogs, trigramSearchable } from '../../src/queries/logs/search.js'
import { countLogs, pageWithTotal } from '../../src/queries/logs/total.js'
import { buildTestApp, insertLogs } from '../helpers/app.js'
import { ADMIN_FIELDS, USER_FIELDS } from '../helpers/fields.js'

// The query functions of src/queries/logs/, called directly with app.db.

const { exactCountLimit: EXACT_COUNT_LIMIT, bitmapPageLimit: BITMAP_PAGE_LIMIT, probeRows: PROBE_ROWS } = COUNT_LIMITS

t.test('escapeLike', async (t) => {
  t.equal(escapeLike('plain text'), 'plain text')
  t.equal(escapeLike(''), '')
  t.equal(escapeLike('%'), '\\%')
  t.equal(escapeLike('_'), '\\_')
  t.equal(escapeLike('\\'), '\\\\')
  t.equal(escapeLike('a_b'), 'a\\_b')
  t.equal(escapeLike('50%_\\x'), '50\\%\\_\\\\x')
  t.equal(escapeLike('%%__\\\\'), '\\%\\%\\_\\_\\\\\\\\')
  t.equal(escapeLike('模型%倍率'), '模型\\%倍率')

  t.test('PostgreSQL reads the escaped pattern literally', async (t) => {
    const app = await buildTestApp(t)
    const like = async (text: string, keyword: string) => {
      const { rows } = await sql<{ hit: boolean }>`select ${text} ilike ${`%${escapeLike(keyword)}%`} as hit`.execute(app.db)
      return rows[0]?.hit
    }
    t.equal(await like('discount 50% off', '50%'), true)
    t.equal(await like('discount 500 off', '50%'), false)
    t.equal(await like('a_b', 'a_b'), true)
    t.equal(await like('axb', 'a_b'), false)
    t.equal(await like('C:\\temp', 'C:\\t'), true)
    t.equal(await like('C:temp', 'C:\\t'), false)
    t.equal(await like('C:\\temp', '\\'), true)
    t.equal(await like('no backslash', '\\'), false)
    t.equal(await like('100%_done', '%_'), true)
    t.equal(await like('100% done', '%_'), false)
    t.equal(await like('ERROR', 'error'), true)
  })
})

t.test('whereLogs, countLogs', async (t) => {
  const app = await buildTestApp(t)
  const rows: Array<Insertable<LogsTable>> = [
    { user_id: 1, token_id: 11, type: 2, created_at: 100, token_name: 'k1', model_name: 'm1', group: 'g1', request_id: 'q1', username: 'u1', channel_id: 5 },
    { user_id: 1, token_id: 12, type: 3, created_at: 200, token_name: 'k2', model_name: 'm1', group: 'g2', request_id: 'q2', username: 'u1', channel_id: 6 },
    { user_id: 2, token_id: 13, type: 2, created_at: 300, token_name: 'k1', model_name: 'm2', group: 'g1', request_id: 'q3', username: 'u2', channel_id: 5 },
    { user_id: 2, token_id: 13, type: 0, created_at: 400, username: 'u2' },
    { user_id: 3, token_id: 14, type: 7, created_at: 100, token_name: 'k%', model_name: 'm_', group: 'g1', request_id: 'q%', username: 'u_', channel_id: 5 }
  ]
  const ids = await insertLogs(app.db, rows)
  const r = (...n: number[]) => n.map((i) => ids[i - 1]!)
  const all = r(1, 2, 3, 4, 5)

  async function matching (f: LogFilter) {
    const found = await app.db.selectFrom('logs').select('logs.id').where((eb) => whereLogs(eb, f)).orderBy('logs.id').execute()
    return found.map((row) => row.id)
  }

  const cases: Array<[string, LogFilter, number[]]> = [
    ['no filter', {}, all],
    ['every field undefined', { userId: undefined, tokenId: undefined, type: undefined, startTimestamp: undefined, endTimestamp: undefined, tokenName: undefined, modelName: undefined, group: undefined, requestId: undefined, username: undefined, channel: undefined }, all],
    ['userId', { userId: 1 }, r(1, 2)],
    ['userId 0 is still a filter (never "everyone")', { userId: 0 }, []],
    ['tokenId', { tokenId: 13 }, r(3, 4)],
    ['tokenId 0 is still a filter', { tokenId: 0 }, []],
    ['type', { type: 2 }, r(1, 3)],
    ['type 7', { type: 7 }, r(5)],
    ['type 0 is every type', { type: 0 }, all],
    ['startTimestamp inclusive', { startTimestamp: 200 }, r(2, 3, 4)],
    ['startTimestamp 0', { startTimestamp: 0 }, all],
    ['endTimestamp inclusive', { endTimestamp: 200 }, r(1, 2, 5)],
    ['endTimestamp 0 is a filter', { endTimestamp: 0 }, []],
    ['window of one second', { startTimestamp: 100, endTimestamp: 100 }, r(1, 5)],
    ['empty window', { startTimestamp: 101, endTimestamp: 199 }, []],
    ['tokenName', { tokenName: 'k1' }, r(1, 3)],
    ['tokenName with % is literal', { tokenName: 'k%' }, r(5)],
    ['tokenName prefix does not match', { tokenName: 'k' }, []],
    ['modelName with _ is literal', { modelName: 'm_' }, r(5)],
    ['modelName', { modelName: 'm1' }, r(1, 2)],
    ['group', { group: 'g1' }, r(1, 3, 5)],
    ['requestId', { requestId: 'q1' }, r(1)],
    ['requestId with % is literal', { requestId: 'q%' }, r(5)],
    ['username', { username: 'u1' }, r(1, 2)],
    ['username with _ is literal', { username: 'u_' }, r(5)],
    ['channel', { channel: 5 }, r(1, 3, 5)],
    ['channel 0 is every channel', { channel: 0 }, all],
    ['empty strings are no filter', { tokenName: '', modelName: '', group: '', requestId: '', username: '' }, all],
    ['userId + type', { userId: 1, type: 2 }, r(1)],
    ['userId + tokenId + window', { userId: 2, tokenId: 13, startTimestamp: 300, endTimestamp: 300 }, r(3)],
    ['group + channel + type', { group: 'g1', channel: 5, type: 2 }, r(1, 3)],
    ['userId contradicts username', { userId: 1, username: 'u2' }, []],
    ['type 0 with other filters', { type: 0, userId: 2 }, r(3, 4)],
    ['every filter at once', { userId: 2, tokenId: 13, type: 2, startTimestamp: 300, endTimestamp: 300, tokenName: 'k1', modelName: 'm2', group: 'g1', requestId: 'q3', username: 'u2', channel: 5 }, r(3)],
    ['every filter but one field off', { userId: 2, tokenId: 13, type: 2, startTimestamp: 300, endTimestamp: 300, tokenName: 'k1', modelName: 'm2', group: 'g1', requestId: 'q3', username: 'u2', channel: 6 }, []]
  ]

  t.test('whereLogs', async (t) => {
    for (const [name, filter, expected] of cases) {
      t.strictSame(await matching(filter), expected, name)
    }
  })

  t.test('countLogs counts what whereLogs matches, as a number', async (t) => {
    for (const [name, filter, expected] of cases) {
      const { total, exact } = await countLogs(app.db, filter)
      t.equal(exact, true, `${name}: exact`)
      t.equal(typeof total, 'number', `${name}: number`)
      t.equal(total, expected.length, name)
    }
  })
})

t.test('listUserLogs, listAdminLogs: order, paging, columns', async (t) => {
  const app = await buildTestApp(t)
  const [channel] = await app.db.insertInto('channels').values({ name: 'primary' }).returning('id').execute()
  // 25 rows of user 1 (five per second, inserted scrambled), 5 of user 2 on channel 0.
  const rows: Array<Insertable<LogsTable>> = []
  for (let i = 0; i < 25; i++) {
    const k = (i * 9) % 25
    rows.push({ user_id: 1, created_at: 1000 + Math.floor(k / 5), type: k % 2 === 0 ? 2 : 3, channel_id: k < 10 ? channel!.id : 99, token_id: 7, other: `{"k":${k}}`, ip: '192.0.2.1' })
  }
  for (let i = 0; i < 5; i++) rows.push({ user_id: 2, created_at: 2000 + i, type: 2 })
  const ids = await insertLogs(app.db, rows)
  const newestFirst = (keep: (row: Insertable<LogsTable>) => boolean) => ids
    .map((id, i) => ({ id, row: rows[i]! }))
    .filter(({ row }) => keep(row))
    .sort((x, y) => (y.row.created_at as number) - (x.row.created_at as number) || y.id - x.id)
    .map(({ id }) => id)
  const userOne = newestFirst((row) => row.user_id === 1)
  const everyone = newestFirst(() => true)
  t.not(userOne.join(), [...userOne].sort((x, y) => y - x).join(), 'fixture: ids are not in created_at order')

  t.test('listUserLogs pages through one user, newest first', async (t) => {
    const f = { userId: 1 }
    const p1 = await listUserLogs(app.db, f, { page: 1, pageSize: 10 })
    const p2 = await listUserLogs(app.db, f, { page: 2, pageSize: 10 })
    const p3 = await listUserLogs(app.db, f, { page: 3, pageSize: 10 })
    const p4 = await listUserLogs(app.db, f, { page: 4, pageSize: 10 })
    t.strictSame(p1.map((i) => i.id), userOne.slice(0, 10))
    t.strictSame(p2.map((i) => i.id), userOne.slice(10, 20))
    t.strictSame(p3.map((i) => i.id), userOne.slice(20))
    t.strictSame(p4, [])
    t.strictSame((await listUserLogs(app.db, f, { page: 1, pageSize: 100 })).map((i) => i.id), userOne)
    t.strictSame((await listUserLogs(app.db, f, { page: 25, pageSize: 1 })).map((i) => i.id), [userOne[24]])
    t.strictSame((await listUserLogs(app.db, f, { page: 26, pageSize: 1 })), [])
    for (const item of p1) t.strictSame(Object.keys(item).sort(), USER_FIELDS)
    t.ok(p1.every((i) => i.user_id === 1))
    t.equal(typeof p1[0]!.id, 'number')
    t.equal(typeof p1[0]!.created_at, 'number')
    t.equal(typeof p1[0]!.quota, 'number')
  })

  t.test('listUserLogs with a filter and by token', async (t) => {
    const type2 = newestFirst((row) => row.user_id === 1 && row.type === 2)
    t.strictSame((await listUserLogs(app.db, { userId: 1, type: 2 }, { page: 1, pageSize: 100 })).map((i) => i.id), type2)
    t.strictSame((await listUserLogs(app.db, { userId: 1, type: 2 }, { page: 2, pageSize: 5 })).map((i) => i.id), type2.slice(5, 10))
    t.strictSame(await countLogs(app.db, { userId: 1, type: 2 }), { total: type2.length, exact: true })
    t.strictSame((await listUserLogs(app.db, { tokenId: 7 }, { page: 1, pageSize: 100 })).map((i) => i.id), userOne)
    t.strictSame(await listUserLogs(app.db, { userId: 3 }, { page: 1, pageSize: 20 }), [])
  })

  t.test('listAdminLogs pages through every row, with channel_name', async (t) => {
    const p1 = await listAdminLogs(app.db, {}, { page: 1, pageSize: 20 })
    const p2 = await listAdminLogs(app.db, {}, { page: 2, pageSize: 20 })
    t.strictSame(p1.map((i) => i.id), everyone.slice(0, 20))
    t.strictSame(p2.map((i) => i.id), everyone.slice(20))
    t.strictSame(await listAdminLogs(app.db, {}, { page: 3, pageSize: 20 }), [])
    for (const item of [...p1, ...p2]) {
      t.strictSame(Object.keys(item).sort(), ADMIN_FIELDS)
      const expected = item.channel_id === channel!.id ? 'primary' : ''
      t.equal(item.channel_name, expected, `channel ${item.channel_id}`)
    }
    // The channel rows are the oldest ten (page 2); page 1 holds the unknown channel 99 and 0.
    t.ok(p2.every((i) => i.channel_name === 'primary'))
    t.ok(p1.some((i) => i.channel_id === 99 && i.channel_name === ''))
    t.ok(p1.some((i) => i.channel_id === 0 && i.channel_name === ''))
    t.strictSame(await countLogs(app.db, {}), { total: 30, exact: true })
    const byChannel = await listAdminLogs(app.db, { channel: channel!.id }, { page: 1, pageSize: 100 })
    t.strictSame(byChannel.map((i) => i.id), newestFirst((row) => row.channel_id === channel!.id))
    t.equal(byChannel.length, 10)
  })

  t.test('a missing channel row does not drop the log row', async (t) => {
    const orphans = await listAdminLogs(app.db, { channel: 99 }, { page: 1, pageSize: 100 })
    t.equal(orphans.length, 15)
    t.ok(orphans.every((i) => i.channel_name === ''))
  })
})

t.test('searchUserLogs, searchAdminLogs', async (t) => {
  const app = await buildTestApp(t)
  const [channel] = await app.db.insertInto('channels').values({ name: 'search-chan' }).returning('id').execute()
  const ids = await insertLogs(app.db, [
    { user_id: 1, created_at: 10, type: 2, content: 'Alpha 50% beta', channel_id: channel!.id },
    { user_id: 1, created_at: 20, type: 4, content: 'alpha_gamma' },
    { user_id: 2, created_at: 30, type: 2, content: 'ALPHA delta' },
    { user_id: 2, created_at: 30, type: 1, content: 'nothing here' },
    { user_id: 1, created_at: 5, type: 1, content: 'alphaXgamma' }
  ])
  const r = (...n: number[]) => n.map((i) => ids[i - 1]!)

  t.test('searchUserLogs', async (t) => {
    const { items: mine, complete } = await searchUserLogs(app.db, { keyword: 'alpha', userId: 1, limit: 100 })
    t.equal(complete, true)
    t.strictSame(mine.map((i) => i.id), r(2, 1, 5))
    for (const item of mine) t.strictSame(Object.keys(item).sort(), USER_FIELDS)
    t.strictSame((await searchUserLogs(app.db, { keyword: 'alpha', userId: 1, limit: 2 })).items.map((i) => i.id), r(2, 1))
    t.strictSame((await searchUserLogs(app.db, { keyword: 'alpha_', userId: 1, limit: 100 })).items.map((i) => i.id), r(2))
    t.strictSame((await searchUserLogs(app.db, { keyword: '%', userId: 1, limit: 100 })).items.map((i) => i.id), r(1))
    t.strictSame((await searchUserLogs(app.db, { keyword: '1', userId: 2, limit: 100 })).items.map((i) => i.id), r(4))
    t.strictSame((await searchUserLogs(app.db, { keyword: '2', userId: 1, limit: 100 })).items.map((i) => i.id), r(1))
    t.strictSame((await searchUserLogs(app.db, { keyword: 'alpha', userId: 3, limit: 100 })).items, [])
  })

  t.test('searchAdminLogs', async (t) => {
    const { items: found } = await searchAdminLogs(app.db, { keyword: 'ALPHA', limit: 100 })
    t.strictSame(found.map((i) => i.id), r(3, 2, 1, 5))
    for (const item of found) t.strictSame(Object.keys(item).sort(), ADMIN_FIELDS)
    t.equal(found.find((i) => i.id === ids[0])?.channel_name, 'search-chan')
    t.equal(found.find((i) => i.id === ids[1])?.channel_name, '')
    t.strictSame((await searchAdminLogs(app.db, { keyword: 'alpha', limit: 1 })).items.map((i) => i.id), r(3))
    // Ties on created_at 30: id desc.
    t.strictSame((await searchAdminLogs(app.db, { keyword: '1', limit: 100 })).items.map((i) => i.id), r(4, 5))
    t.strictSame((await searchAdminLogs(app.db, { keyword: 'e', limit: 100 })).items.map((i) => i.id), r(4, 3, 1))
  })

  t.test('a keyword without a trigram is read for, chunk by chunk, within a budget', async (t) => {
    t.equal(trigramSearchable('ab'), false)
    t.equal(trigramSearchable('超时'), false)
    t.equal(trigramSearchable('a%b_c'), false)
    t.equal(trigramSearchable('abc'), true)
    t.equal(trigramSearchable('参数错误'), true)
    const chunksOf = (chunkRows: number, budgetMs = 60_000) => ({ chunkRows, budgetMs })
    // newest first the rows are 4/3 (created_at 30), 2 (20), 1 (10), 5 (5)
    for (const rows of [1, 2, 3, 5, 100]) {
      const found = await searchAdminLogs(app.db, { keyword: 'ph', limit: 100, scan: chunksOf(rows) })
      t.strictSame({ ids: found.items.map((i) => i.id), complete: found.complete }, { ids: r(3, 2, 1, 5), complete: true },
        `chunks of ${rows}: every match, whichever chunk holds it, ties (created_at 30) split or not`)
    }
    t.strictSame((await searchAdminLogs(app.db, { keyword: 'ph', limit: 2, scan: chunksOf(1) })).items.map((i) => i.id), r(3, 2), 'stops at the limit')
    t.strictSame(await searchAdminLogs(app.db, { keyword: 'ph', limit: 100, scan: chunksOf(3, 0) }).then((r) => ({ ids: r.items.map((i) => i.id), complete: r.complete })),
      { ids: r(3, 2), complete: false }, 'budget 0: the newest chunk only (rows 4, 3, 2), and the answer says it is incomplete')
    t.strictSame((await searchAdminLogs(app.db, { keyword: 'pha', limit: 100, scan: chunksOf(1, 0) })).items.map((i) => i.id), r(3, 2, 1, 5),
      'a keyword with a trigram is looked up in the index, whatever the budget')
    t.strictSame(await searchUserLogs(app.db, { keyword: 'ph', userId: 1, limit: 100, scan: chunksOf(1) }).then((r) => ({ ids: r.items.map((i) => i.id), complete: r.complete })),
      { ids: r(2, 1, 5), complete: true }, "a user's chunks are their own rows")
    t.strictSame(await searchUserLogs(app.db, { keyword: 'ph', userId: 1, limit: 100, scan: chunksOf(2, 0) }).then((r) => ({ ids: r.items.map((i) => i.id), complete: r.complete })),
      { ids: r(2, 1), complete: false }, "budget 0: the user's own newest chunk")
  })
})

t.test('pageWithTotal: filters on two GIN columns, with no, few and many matches', async (t) => {
  const app = await buildTestApp(t)
  const T = 1_800_000_000
  // channel 1 serves model a, channel 2 model b; channel 1 also served b for a few rows
  const rows: Array<Insertable<LogsTable>> = []
  for (let i = 0; i < 3 * BITMAP_PAGE_LIMIT; i++) rows.push({ user_id: 1 + (i % 2), created_at: T + i, type: 2, model_name: 'a', channel_id: 1 })
  for (let i = 0; i < 2 * BITMAP_PAGE_LIMIT; i++) rows.push({ user_id: 1, created_at: T + i, type: 2, model_name: 'b', channel_id: 2 })
  const fewAt = [5, 700, 701, 4000, 9000]
  for (const at of fewAt) rows.push({ user_id: 2, created_at: T + at, type: 2, model_name: 'b', channel_id: 1 })
  await insertLogs(app.db, rows)
  await sql`analyze logs`.execute(app.db)

  const newestFirst = (xs: Array<{ created_at: number, id: number }>) => [...xs].sort((x, y) => y.created_at - x.created_at || y.id - x.id)
  const expectPage = async (f: LogFilter, page: { page: number, pageSize: number, after?: { createdAt: number, id: number } }, label: string) => {
    const { items, total } = await pageWithTotal(app.db, f, page, adminPage)
    const all = await listAdminLogs(app.db, f, { page: 1, pageSize: 100_000 })
    const offset = page.after === undefined ? (page.page - 1) * page.pageSize : 0
    const after = page.after
    const expected = newestFirst(all).filter((r) => after === undefined || r.created_at < after.createdAt || (r.created_at === after.createdAt && r.id < after.id))
      .slice(offset, offset + page.pageSize)
    t.strictSame(items.map((r) => r.id), expected.map((r) => r.id), `${label}: the page`)
    t.strictSame(total, { total: all.length, exact: all.length <= EXACT_COUNT_LIMIT }, `${label}: the total`)
    return items
  }

  const none = await expectPage({ channel: 2, modelName: 'a' }, { page: 1, pageSize: 20 }, 'no overlap')
  t.equal(none.length, 0)
  const few = await expectPage({ channel: 1, modelName: 'b' }, { page: 1, pageSize: 3 }, 'a few')
  t.strictSame(few.map((r) => r.created_at), [T + 9000, T + 4000, T + 701])
  await expectPage({ channel: 1, modelName: 'b' }, { page: 2, pageSize: 3 }, 'a few, page 2')
  await expectPage({ channel: 1, modelName: 'b' }, { page: 3, pageSize: 3 }, 'a few, past the end')
  await expectPage({ channel: 1, modelName: 'b' }, { page: 1, pageSize: 2, after: { createdAt: T + 701, id: few[2]!.id } }, 'a few, by cursor')
  await expectPage({ channel: 1, modelName: 'b', userId: 2, startTimestamp: T + 600 }, { page: 1, pageSize: 20 }, 'a few, with a user and a window')
  await expectPage({ channel: 1, modelName: 'a' }, { page: 1, pageSize: 20 }, 'many')
  await expectPage({ channel: 1, modelName: 'a', userId: 2 }, { page: 4, pageSize: 20 }, 'many, with a user, page 4')
})

t.test('pageWithTotal: a small scope is counted by its probe, a dense large one extrapolated', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const T = 1_800_000_000
  const n = 4 * EXACT_COUNT_LIMIT
  // user 1: n rows, model a on channel 1 for two rows in three; user 2: a handful
  await app.db.insertInto('logs').columns(['user_id', 'created_at', 'type', 'model_name', 'channel_id']).expression((eb) => eb.selectFrom(sql<{ g: number }>`generate_series(1, ${n})`.as('g'))
    .select([sql<number>`1`.as('user_id'), sql<number>`${T} + g`.as('created_at'), sql<number>`2`.as('type'),
      sql<string>`case when g % 3 = 0 then 'b' else 'a' end`.as('model_name'), sql<number>`1`.as('channel_id')]))
    .execute()
  await insertLogs(app.db, [5, 6, 7].map((i) => ({ user_id: 2, created_at: T + i, type: 2, model_name: i === 6 ? 'b' : 'a', channel_id: 1 })))
  // user 3: more rows than the probe reads, a few matches among the oldest
  await insertLogs(app.db, Array.from({ length: PROBE_ROWS + 500 }, (_, i) => ({ user_id: 3, created_at: T + i, type: 2, model_name: i % 100 === 0 ? 'c' : 'a', channel_id: 1 })))

  const small = await pageWithTotal(app.db, { userId: 2, modelName: 'a', channel: 1 }, { page: 1, pageSize: 20 }, userPage)
  t.strictSame(small.total, { total: 2, exact: true }, 'the probe saw all of user 2')
  t.strictSame(small.items.map((r) => r.created_at), [T + 7, T + 5])

  const sparse = await pageWithTotal(app.db, { userId: 3, modelName: 'c', channel: 1 }, { page: 2, pageSize: 10 }, userPage)
  t.strictSame(sparse.total, { total: 25, exact: true }, 'counted by walking user 3\'s rows')
  t.strictSame(sparse.items.map((r) => r.created_at), Array.from({ length: 10 }, (_, i) => T + 1400 - i * 100))

  const dense = await pageWithTotal(app.db, { userId: 1, modelName: 'a', channel: 1 }, { page: 1, pageSize: 3 }, userPage)
  t.equal(dense.total.exact, false, 'too many to count: an estimate')
  const actual = Math.floor(n * 2 / 3)
  t.ok(Math.abs(dense.total.total - actual) < actual * 0.02, `close to the ${actual} matches (${dense.total.total})`)
  t.strictSame(dense.items.map((r) => r.created_at), [T + n, T + n - 2, T + n - 3], 'the newest matches')
})

t.test('pageWithTotal: an unfiltered page and its total in one statement', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const T = 1_800_000_000
  await insertLogs(app.db, Array.from({ length: 45 }, (_, i) => ({ user_id: 1 + (i % 3), created_at: T + Math.floor(i / 2) * 3600, type: 2, channel_id: i % 2 })))
  await app.db.insertInto('channels').values({ id: 1, name: 'one' }).execute()
  const cases: Array<{ f: LogFilter, page: { page: number, pageSize: number, after?: { createdAt: number, id: number } } }> = [
    { f: { userId: 1 }, page: { page: 1, pageSize: 4 } },
    { f: { userId: 1 }, page: { page: 3, pageSize: 4 } },
    { f: { userId: 1 }, page: { page: 9, pageSize: 4 } },
    { f: { userId: 7 }, page: { page: 1, pageSize: 4 } },
    { f: { userId: 2, startTimestamp: T + 3600, endTimestamp: T + 5 * 3600 }, page: { page: 1, pageSize: 20 } },
    { f: {}, page: { page: 2, pageSize: 10 } },
    { f: {}, page: { page: 1, pageSize: 5, after: { createdAt: T + 10 * 3600, id: 100 } } }
  ]
  for (const { f, page } of cases) {
    for (const [label, shape, list] of [['user', userPage, listUserLogs], ['admin', adminPage, listAdminLogs]] as const) {
      const got = await pageWithTotal(app.db, f, page, shape as typeof adminPage)
      t.strictSame(got.items, await list(app.db, f, page), `${label} ${JSON.stringify({ f, page })}: the page`)
      t.strictSame(got.total, await countLogs(app.db, f), `${label} ${JSON.stringify({ f, page })}: the total`)
    }
  }
  const named = await pageWithTotal(app.db, {}, { page: 1, pageSize: 50 }, adminPage)
  t.equal(named.items.filter((r) => r.channel_name === 'one').length, 22, 'the admin columns come through the join')
})
