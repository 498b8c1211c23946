import t, { type Test } from 'tap'
import { sql, type Insertable } from 'kysely'
import type { App } from '../../src/app.js'
import type { LogsTable } from '../../src/db/types.js'
import type { TestUser } from '../helpers/app.js'
import { assertBadRequest } from '../helpers/envelope.js'
import { ADMIN_FIELDS, USER_FIELDS } from '../helpers/fields.js'
import { buildCast, insertLabelled, insertOrdered, type Cast } from '../helpers/labelled.js'

// GET /api/log/search (admin) and GET /api/log/self/search (user): keyword rules, literal and
// case-insensitive matching, the integer-keyword type match, the 100-newest cap.

const T = 1_700_000_000

interface Item { id: number, [key: string]: unknown }

async function search (app: App, url: string, user: TestUser, query: Record<string, string>) {
  return await app.inject({ method: 'GET', url, headers: user.headers, query })
}

interface Fixture extends Cast {
  id: Record<string, number>
  channel: number
}

// No content below holds a digit 3 except 'digits' and 'cjk128' does not either: keyword '3'
// matches exactly the type-3 rows plus 'digits'.
async function seed (t: Test): Promise<Fixture> {
  const cast = await buildCast(t)
  const { app, alice, bob } = cast
  const [ch] = await app.db.insertInto('channels').values({ name: 'azure-east' }).returning('id').execute()
  const channel = ch!.id
  const labelled: Array<[string, Insertable<LogsTable>]> = [
    ['upper', { user_id: alice.id, username: 'alice', created_at: T + 20, type: 4, content: 'Upstream ERROR: timeout', channel_id: channel, ip: '198.51.100.7', other: '{"x":1}' }],
    ['lower', { user_id: bob.id, username: 'bob', created_at: T + 21, type: 4, content: 'error while streaming', channel_id: 777 }],
    ['mixed', { user_id: alice.id, username: 'alice', created_at: T + 20, type: 2, content: 'an Error occurred' }],
    ['pct', { user_id: alice.id, username: 'alice', created_at: T + 10, type: 1, content: 'discount 50% applied' }],
    ['nopct', { user_id: alice.id, username: 'alice', created_at: T + 11, type: 1, content: 'discount 500 applied' }],
    ['under', { user_id: bob.id, username: 'bob', created_at: T + 12, type: 3, content: 'field a_b set' }],
    ['nounder', { user_id: bob.id, username: 'bob', created_at: T + 13, type: 1, content: 'field axb set, field ab set' }],
    ['bslash', { user_id: alice.id, username: 'alice', created_at: T + 14, type: 3, content: 'path C:\\temp\\x' }],
    ['nobslash', { user_id: alice.id, username: 'alice', created_at: T + 15, type: 1, content: 'path C:/temp/x and C:temp' }],
    ['cjk', { user_id: alice.id, username: 'alice', created_at: T + 16, type: 2, content: '模型倍率 1.5，补全倍率 2，分组倍率 1' }],
    ['cjk2', { user_id: bob.id, username: 'bob', created_at: T + 17, type: 2, content: '模型价格 0.1' }],
    ['umlaut', { user_id: alice.id, username: 'alice', created_at: T + 18, type: 5, content: 'ÄBC Straße' }],
    ['digits', { user_id: bob.id, username: 'bob', created_at: T + 19, type: 2, content: 'retry 3 times' }],
    ['cjk128', { user_id: alice.id, username: 'alice', created_at: T + 5, type: 5, content: `前${'日志'.repeat(64)}后` }]
  ]
  return { ...cast, id: await insertLabelled(app.db, labelled), channel }
}

const idsOf = (fx: Fixture, labels: string[]) => labels.map((l) => fx.id[l])

/** A search for keyword at url, as user: a 200 with exactly the labelled rows, in that order. */
async function searchRows (t: Test, fx: Fixture, url: string, user: TestUser, keyword: string, labels: string[]) {
  const res = await search(fx.app, url, user, { keyword })
  const shown = JSON.stringify(keyword).slice(0, 40)
  t.equal(res.statusCode, 200, `keyword ${shown}: ${res.statusCode === 200 ? 'ok' : res.body}`)
  t.strictSame(res.json().data?.map((i: Item) => i.id), idsOf(fx, labels), `rows for keyword ${shown}`)
}

/** The same search answers at url and at url/ (the keyword written into the URL). */
function bothPathsAnswer (t: Test, fx: Fixture, url: string, user: TestUser, keyword: string, labels: string[]) {
  t.test(`both ${url} and ${url}/ answer`, async (t) => {
    for (const path of [url, `${url}/`]) {
      const withQuery = `${path}?keyword=${encodeURIComponent(keyword)}`
      const res = await fx.app.inject({ url: withQuery, headers: user.headers })
      t.equal(res.statusCode, 200, withQuery)
      t.strictSame(res.json().data.map((i: Item) => i.id), idsOf(fx, labels), withQuery)
    }
  })
}

t.test('admin search', async (t) => {
  const fx = await seed(t)
  const { app, admin } = fx

  const expectRows = (t: Test, keyword: string, labels: string[]) => searchRows(t, fx, '/api/log/search', admin, keyword, labels)

  t.test('envelope, admin item fields, channel_name', async (t) => {
    const res = await search(app, '/api/log/search', admin, { keyword: 'error' })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['data', 'message', 'success'])
    t.equal(body.success, true)
    t.equal(body.message, '')
    t.ok(Array.isArray(body.data))
    for (const item of body.data) t.strictSame(Object.keys(item).sort(), ADMIN_FIELDS)
    const upper = body.data.find((i: Item) => i.id === fx.id.upper)
    t.match(upper, { user_id: fx.alice.id, username: 'alice', channel_id: fx.channel, channel_name: 'azure-east', ip: '198.51.100.7', other: '{"x":1}', type: 4 })
    const lower = body.data.find((i: Item) => i.id === fx.id.lower)
    t.match(lower, { channel_id: 777, channel_name: '' })
  })

  t.test('matches content case-insensitively, newest first (created_at desc, id desc)', async (t) => {
    // lower T+21; upper and mixed tie at T+20, mixed inserted later.
    await expectRows(t, 'error', ['lower', 'mixed', 'upper'])
    await expectRows(t, 'ERROR', ['lower', 'mixed', 'upper'])
    await expectRows(t, 'eRrOr', ['lower', 'mixed', 'upper'])
    await expectRows(t, 'ERROR:', ['upper'])
    await expectRows(t, 'while stream', ['lower'])
    await expectRows(t, 'no such text', [])
  })

  t.test('the keyword is trimmed', async (t) => {
    await expectRows(t, '  error\t', ['lower', 'mixed', 'upper'])
    await expectRows(t, ' ERROR: ', ['upper'])
  })

  t.test('% matches only a literal percent', async (t) => {
    await expectRows(t, '%', ['pct'])
    await expectRows(t, '50%', ['pct'])
    await expectRows(t, '%applied', [])
    await expectRows(t, 'discount%applied', [])
  })

  t.test('_ matches only a literal underscore', async (t) => {
    await expectRows(t, '_', ['under'])
    await expectRows(t, 'a_b', ['under'])
    await expectRows(t, 'field _b', [])
  })

  t.test('\\ matches only a literal backslash', async (t) => {
    await expectRows(t, '\\', ['bslash'])
    await expectRows(t, 'C:\\temp', ['bslash'])
    await expectRows(t, 'C:\\t', ['bslash'])
    await expectRows(t, '\\temp\\x', ['bslash'])
    await expectRows(t, 'C:\\', ['bslash'])
    await expectRows(t, '\\%', [])
    await expectRows(t, '\\_', [])
  })

  t.test('an integer keyword matches the type too, and content holding the digits', async (t) => {
    await expectRows(t, '3', ['digits', 'bslash', 'under'])
    await expectRows(t, ' 3 ', ['digits', 'bslash', 'under'])
    await expectRows(t, '4', ['lower', 'upper'])
    await expectRows(t, '5', ['umlaut', 'cjk', 'nopct', 'pct', 'cjk128'])
    await expectRows(t, '50', ['nopct', 'pct'])
    await expectRows(t, '50%', ['pct'])
    await expectRows(t, '7', [])
    await expectRows(t, '3 times', ['digits'])
    // Any decimal integer, however written, as long as it fits the type column (int4).
    await expectRows(t, '0000000003', ['bslash', 'under'])
    await expectRows(t, '+3', [])
    await expectRows(t, '99999999999', [])
  })

  t.test('Chinese keywords', async (t) => {
    await expectRows(t, '模型倍率', ['cjk'])
    await expectRows(t, '倍率', ['cjk'])
    await expectRows(t, '模型', ['cjk2', 'cjk'])
    await expectRows(t, '日志日志', ['cjk128'])
  })

  t.test('non-ASCII case folding, where the database collation supports it', async (t) => {
    const { rows } = await sql<{ folds: boolean }>`select lower('ÄBC') = 'äbc' as folds`.execute(app.db)
    const folds = rows[0]?.folds === true
    t.comment(`database folds Ä to ä: ${folds}`)
    await expectRows(t, 'ÄBC', ['umlaut'])
    await expectRows(t, 'straße', ['umlaut'])
    const res = await search(app, '/api/log/search', admin, { keyword: 'äbc' })
    t.equal(res.statusCode, 200)
    t.strictSame(res.json().data.map((i: Item) => i.id), folds ? idsOf(fx, ['umlaut']) : [], 'äbc finds ÄBC exactly when the database folds case')
  })

  t.test('keyword length: 128 characters after trimming, counted as characters', async (t) => {
    const cjk128 = '日志'.repeat(64)
    await expectRows(t, cjk128, ['cjk128'])
    await expectRows(t, `  ${cjk128}  `, ['cjk128'])
    await expectRows(t, '😀'.repeat(128), [])
    await expectRows(t, 'x'.repeat(128), [])
    for (const keyword of ['x'.repeat(129), '日'.repeat(129), '😀'.repeat(129), `${cjk128}後`]) {
      assertBadRequest(t, await search(app, '/api/log/search', admin, { keyword }), /keyword/, `${[...keyword].length} characters`)
    }
  })

  t.test('only the trimmed keyword counts toward the limit', async (t) => {
    await expectRows(t, `${' '.repeat(600)}error${' '.repeat(600)}`, ['lower', 'mixed', 'upper'])
  })

  t.test('missing, empty or whitespace-only keyword is a 400 naming keyword', async (t) => {
    const queries: Array<Record<string, string>> = [{}, { keyword: '' }, { keyword: '   ' }, { keyword: '\t \t' }]
    for (const query of queries) {
      assertBadRequest(t, await search(app, '/api/log/search', admin, query), /keyword/, JSON.stringify(query))
    }
  })

  bothPathsAnswer(t, fx, '/api/log/search', admin, 'ERROR:', ['upper'])
})

t.test('self search', async (t) => {
  const fx = await seed(t)
  const { app, alice, bob } = fx

  const expectRows = (t: Test, user: TestUser, keyword: string, labels: string[]) => searchRows(t, fx, '/api/log/self/search', user, keyword, labels)

  t.test('user item fields only', async (t) => {
    const res = await search(app, '/api/log/self/search', alice, { keyword: 'error' })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['data', 'message', 'success'])
    t.match(body, { success: true, message: '' })
    t.ok(body.data.length > 0)
    for (const item of body.data) t.strictSame(Object.keys(item).sort(), USER_FIELDS)
    t.notMatch(res.body, /198\.51\.100\.7|azure-east|channel|"other"|"ip"/)
  })

  t.test('only the caller\'s rows', async (t) => {
    await expectRows(t, alice, 'error', ['mixed', 'upper'])
    await expectRows(t, bob, 'error', ['lower'])
    await expectRows(t, alice, 'field', [])
    await expectRows(t, bob, 'field', ['nounder', 'under'])
    await expectRows(t, alice, '模型', ['cjk'])
    await expectRows(t, bob, '模型', ['cjk2'])
  })

  t.test('integer keyword: own rows of that type or with the digits', async (t) => {
    await expectRows(t, alice, '3', ['bslash'])
    await expectRows(t, bob, '3', ['digits', 'under'])
    await expectRows(t, alice, '4', ['upper'])
  })

  t.test('literal %, _ and \\ on /self too', async (t) => {
    await expectRows(t, alice, '%', ['pct'])
    await expectRows(t, bob, '_', ['under'])
    await expectRows(t, alice, '\\', ['bslash'])
    await expectRows(t, bob, '\\', [])
  })

  t.test('keyword rules on /self', async (t) => {
    const queries: Array<Record<string, string>> = [{}, { keyword: '  ' }, { keyword: 'y'.repeat(129) }]
    for (const query of queries) {
      assertBadRequest(t, await search(app, '/api/log/self/search', alice, query), /keyword/, JSON.stringify(query).slice(0, 40))
    }
    await expectRows(t, alice, ' ERROR ', ['mixed', 'upper'])
  })

  t.test('admin-only parameters do not widen /self/search', async (t) => {
    const res = await app.inject({ url: '/api/log/self/search', headers: bob.headers, query: { keyword: 'error', username: 'alice', user_id: String(alice.id) } })
    t.equal(res.statusCode, 200)
    t.strictSame(res.json().data.map((i: Item) => i.id), idsOf(fx, ['lower']))
  })

  bothPathsAnswer(t, fx, '/api/log/self/search', bob, 'error', ['lower'])
})

t.test('at most the 100 newest matches, newest first', async (t) => {
  const { app, admin, alice, bob } = await buildCast(t)
  // 130 matching rows of alice's, two per second, inserted scrambled; newer rows that do not match;
  // bob's matching rows, the newest of all, which alice's own search must skip.
  const rows: Array<Insertable<LogsTable>> = []
  for (let i = 0; i < 130; i++) {
    const k = (i * 11) % 130
    rows.push({ user_id: alice.id, created_at: T + Math.floor(k / 2), type: 2, content: `call ${k}: Needle found` })
  }
  for (let i = 0; i < 10; i++) rows.push({ user_id: alice.id, created_at: T + 1000 + i, type: 2, content: 'haystack only' })
  for (let i = 0; i < 30; i++) rows.push({ user_id: bob.id, created_at: T + 2000 + i, type: 2, content: 'bob needle' })
  const newestFirst = await insertOrdered(app.db, rows)
  const aliceMatches = newestFirst([...Array(130).keys()])
  const allMatches = newestFirst([...Array(130).keys(), ...Array.from({ length: 30 }, (_, i) => 140 + i)])

  t.test('admin search', async (t) => {
    const res = await search(app, '/api/log/search', admin, { keyword: 'needle' })
    t.equal(res.statusCode, 200)
    const got = res.json().data.map((i: Item) => i.id)
    t.equal(got.length, 100)
    t.strictSame(got, allMatches.slice(0, 100))
  })

  t.test('self search', async (t) => {
    const res = await search(app, '/api/log/self/search', alice, { keyword: 'NEEDLE' })
    t.equal(res.statusCode, 200)
    const data = res.json().data
    t.equal(data.length, 100)
    t.strictSame(data.map((i: Item) => i.id), aliceMatches.slice(0, 100))
    t.equal(data[0].created_at, T + 64)
    t.equal(data[99].created_at, T + 15)
    t.ok(data.every((i: Item) => i.user_id === alice.id))
  })

  t.test('a search matching fewer than 100 rows returns them all', async (t) => {
    const res = await search(app, '/api/log/self/search', bob, { keyword: 'needle' })
    t.equal(res.json().data.length, 30)
  })
})

/** alice's one match for 龘 and "ab" sits 50 rows back; bob has one older still. */
async function deepMatches (t: Test, overrides: Parameters<typeof buildCast>[1]) {
  const cast = await buildCast(t, overrides)
  const { app, alice, bob } = cast
  const rows: Array<Insertable<LogsTable>> = [{ user_id: alice.id, created_at: T, type: 2, content: 'an old 龘 row, ab' }]
  for (let i = 1; i <= 50; i++) rows.push({ user_id: alice.id, created_at: T + i, type: 2, content: `newer row ${i}` })
  rows.push({ user_id: bob.id, created_at: T - 1, type: 2, content: "bob's 龘, ab" })
  await app.db.insertInto('logs').values(rows).execute()
  return cast
}

t.test('a keyword without a trigram is found in old rows, chunk by chunk; a spent budget says so', async (t) => {
  // Chunks of 10 rows: the matches are five chunks deep.
  const { app, admin, alice } = await deepMatches(t, { SEARCH_SCAN_CHUNK_ROWS: 10 })
  for (const keyword of ['龘', 'ab']) {
    const self = await search(app, '/api/log/self/search', alice, { keyword })
    t.equal(self.statusCode, 200)
    t.strictSame(self.json().data.map((i: Item) => i.content), ['an old 龘 row, ab'], `self: "${keyword}" is found 50 rows back, only alice's`)
    t.equal(self.headers['x-search-complete'], 'true', 'and the search says it looked everywhere')
    const all = await search(app, '/api/log/search', admin, { keyword })
    t.strictSame(all.json().data.map((i: Item) => i.content), ['an old 龘 row, ab', "bob's 龘, ab"], `admin: "${keyword}" in every user's rows`)
    t.equal(all.headers['x-search-complete'], 'true')
  }
  const trigram = await search(app, '/api/log/self/search', alice, { keyword: 'old' })
  t.equal(trigram.headers['x-search-complete'], 'true', 'a trigram search is always complete')

  const spent = await deepMatches(t, { SEARCH_SCAN_CHUNK_ROWS: 10, SEARCH_SCAN_BUDGET_MS: 0 })
  const partial = await search(spent.app, '/api/log/self/search', spent.alice, { keyword: '龘' })
  t.equal(partial.statusCode, 200, 'a spent budget is not an error')
  t.strictSame(partial.json().data, [], 'nothing in the newest chunk')
  t.equal(partial.headers['x-search-complete'], 'false', 'and the answer says it is not the whole story')
  const near = await search(spent.app, '/api/log/self/search', spent.alice, { keyword: '50' })
  t.strictSame(near.json().data.map((i: Item) => i.content), ['newer row 50'], 'what the first chunk holds is found')
  t.equal(near.headers['x-search-complete'], 'false')
  const indexed = await search(spent.app, '/api/log/self/search', spent.alice, { keyword: 'old 龘' })
  t.equal(indexed.json().data.length, 1, 'a keyword with a trigram goes through the index, whatever the budget')
  t.equal(indexed.headers['x-search-complete'], 'true')
})
