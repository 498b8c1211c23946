import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import type { Config } from '../../src/config.js'
import { buildTestApp, createApiKey, createUser, insertLogs } from '../helpers/app.js'
import { assertBadRequest } from '../helpers/envelope.js'

const TOKEN_INVALID = 'Token不存在或无权限'

const USER_ITEM_FIELDS = [
  'id', 'user_id', 'created_at', 'type', 'content', 'token_name', 'model_name', 'quota',
  'prompt_tokens', 'completion_tokens', 'use_time', 'is_stream', 'group', 'request_id'
].sort()

const ids = (res: LightMyRequestResponse) => (res.json().data as Array<{ id: number }>).map((item) => item.id)

const corsHeaders = (res: LightMyRequestResponse) => Object.keys(res.headers).filter((name) => name.toLowerCase().startsWith('access-control-'))

t.test('GET /api/log/token', async (t) => {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 100_000 })
  const owner = await createUser(app.db)
  const stranger = await createUser(app.db)
  const keyA = await createApiKey(app.db, owner.id, { name: 'alpha' })
  const keyB = await createApiKey(app.db, owner.id, { name: 'beta' })
  const strangerKey = await createApiKey(app.db, stranger.id, { name: 'gamma' })

  // a4 has every column set: the columns a user item shows, and those it must not.
  const a4Shown = {
    user_id: owner.id,
    created_at: 1_700_000_300,
    type: 2,
    content: 'a4',
    token_name: 'alpha',
    model_name: 'gpt-4o',
    quota: 5_000_000_000,
    prompt_tokens: 1200,
    completion_tokens: 345,
    use_time: 7,
    is_stream: true,
    group: 'vip',
    request_id: 'req-a4'
  }
  const a4Hidden = { token_id: keyA.id, username: owner.username, channel_id: 42, ip: '203.0.113.9', other: '{"admin_info":{"x":1}}' }
  const [a1, a2, a3, a4] = await insertLogs(app.db, [
    { user_id: owner.id, created_at: 1_700_000_100, type: 2, token_id: keyA.id, token_name: 'alpha', content: 'a1' },
    { user_id: owner.id, created_at: 1_700_000_300, type: 2, token_id: keyA.id, token_name: 'alpha', content: 'a2' },
    { user_id: owner.id, created_at: 1_700_000_200, type: 2, token_id: keyA.id, token_name: 'alpha', content: 'a3' },
    // Same second as a2, inserted later: the higher id comes first.
    { ...a4Shown, ...a4Hidden }
  ])
  const [b1] = await insertLogs(app.db, [
    { user_id: owner.id, created_at: 1_700_000_400, type: 2, token_id: keyB.id, token_name: 'beta', content: 'b1' },
    { user_id: owner.id, created_at: 1_700_000_500, type: 1, token_id: 0, content: 'top-up, no key' },
    { user_id: stranger.id, created_at: 1_700_000_600, type: 2, token_id: strangerKey.id, token_name: 'gamma', content: 's1' }
  ])
  const newestFirstA = [a4, a2, a3, a1]

  t.test('the key in the `key` query parameter', async (t) => {
    const res = await app.inject({ url: '/api/log/token', query: { key: keyA.key } })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.equal(body.success, true)
    t.equal(body.message, '')
    t.strictSame(ids(res), newestFirstA, 'only rows of that token, created_at desc then id desc')
  })

  t.test('with and without a trailing slash', async (t) => {
    const res = await app.inject({ url: '/api/log/token/', query: { key: keyA.key } })
    t.equal(res.statusCode, 200)
    t.strictSame(ids(res), newestFirstA)
  })

  t.test('the key in the Authorization header, with or without Bearer', async (t) => {
    for (const authorization of [`Bearer ${keyA.key}`, `bearer ${keyA.key}`, keyA.key]) {
      const res = await app.inject({ url: '/api/log/token', headers: { authorization } })
      t.equal(res.statusCode, 200, authorization.replace(keyA.key, '<key>'))
      t.strictSame(ids(res), newestFirstA)
    }
  })

  t.test('a leading sk- is stripped', async (t) => {
    const viaQuery = await app.inject({ url: '/api/log/token', query: { key: `sk-${keyA.key}` } })
    t.equal(viaQuery.statusCode, 200, 'query')
    t.strictSame(ids(viaQuery), newestFirstA)
    for (const authorization of [`Bearer sk-${keyA.key}`, `sk-${keyA.key}`]) {
      const res = await app.inject({ url: '/api/log/token', headers: { authorization } })
      t.equal(res.statusCode, 200, authorization.replace(keyA.key, '<key>'))
      t.strictSame(ids(res), newestFirstA)
    }
  })

  t.test('the header wins over the query parameter', async (t) => {
    const validHeader = await app.inject({ url: '/api/log/token', query: { key: 'not-a-key' }, headers: { authorization: `Bearer ${keyA.key}` } })
    t.equal(validHeader.statusCode, 200, 'valid header, invalid query')
    t.strictSame(ids(validHeader), newestFirstA)

    const invalidHeader = await app.inject({ url: '/api/log/token', query: { key: keyA.key }, headers: { authorization: 'Bearer not-a-key' } })
    t.equal(invalidHeader.statusCode, 401, 'invalid header, valid query')
    t.match(invalidHeader.json(), { success: false, message: TOKEN_INVALID })

    const twoKeys = await app.inject({ url: '/api/log/token', query: { key: keyB.key }, headers: { authorization: `Bearer ${keyA.key}` } })
    t.equal(twoKeys.statusCode, 200, 'two valid keys')
    t.strictSame(ids(twoKeys), newestFirstA, 'the header\'s key')
  })

  t.test('without a key: 401', async (t) => {
    for (const query of [{}, { key: '' }, { key: '   ' }, { key: 'sk-' }] as Array<Record<string, string>>) {
      const res = await app.inject({ url: '/api/log/token', query })
      t.equal(res.statusCode, 401, JSON.stringify(query))
      const body = res.json()
      t.equal(body.success, false)
      t.type(body.message, 'string')
      t.ok(body.message.length > 0, 'a message')
      t.notOk('data' in body)
    }
  })

  t.test('unknown, deleted, disabled keys and disabled owners: 401 Token不存在或无权限', async (t) => {
    const deleted = await createApiKey(app.db, owner.id, { deleted: true })
    const disabled = await createApiKey(app.db, owner.id, { status: 2 })
    const disabledOwner = await createUser(app.db, { status: 2 })
    const ofDisabledOwner = await createApiKey(app.db, disabledOwner.id)
    await insertLogs(app.db, [
      { user_id: owner.id, created_at: 1_700_000_000, type: 2, token_id: deleted.id },
      { user_id: owner.id, created_at: 1_700_000_000, type: 2, token_id: disabled.id },
      { user_id: disabledOwner.id, created_at: 1_700_000_000, type: 2, token_id: ofDisabledOwner.id }
    ])
    const cases: Array<[string, string]> = [
      ['unknown', 'ffffffffffffffffffffffffffffffffffffffffffffffff'],
      ['over-long', 'k'.repeat(1000)],
      ['deleted', deleted.key],
      ['disabled', disabled.key],
      ['disabled owner', ofDisabledOwner.key]
    ]
    for (const [name, key] of cases) {
      const viaQuery = await app.inject({ url: '/api/log/token', query: { key } })
      t.equal(viaQuery.statusCode, 401, `${name}, query`)
      t.equal(viaQuery.json().success, false)
      t.equal(viaQuery.json().message, TOKEN_INVALID)
      t.notOk('data' in viaQuery.json())
      const viaHeader = await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${key}` } })
      t.equal(viaHeader.statusCode, 401, `${name}, header`)
      t.equal(viaHeader.json().message, TOKEN_INVALID)
    }
  })

  t.test('expired (3) and exhausted (4) keys still see their logs', async (t) => {
    for (const status of [3, 4]) {
      const key = await createApiKey(app.db, owner.id, { status })
      const [id] = await insertLogs(app.db, [{ user_id: owner.id, created_at: 1_700_001_000, type: 2, token_id: key.id }])
      const res = await app.inject({ url: '/api/log/token', query: { key: key.key } })
      t.equal(res.statusCode, 200, `status ${status}`)
      t.strictSame(ids(res), [id])
    }
  })

  t.test('each key sees its own rows only', async (t) => {
    const resB = await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${keyB.key}` } })
    t.strictSame(ids(resB), [b1])
    const fresh = await createApiKey(app.db, owner.id)
    const empty = await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${fresh.key}` } })
    t.equal(empty.statusCode, 200)
    t.strictSame(empty.json(), { success: true, message: '', data: [] })
  })

  t.test('items are user items: exact fields, JSON numbers', async (t) => {
    const res = await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${keyA.key}` } })
    const items = res.json().data as Array<Record<string, unknown>>
    t.equal(items.length, 4)
    for (const item of items) {
      t.strictSame(Object.keys(item).sort(), USER_ITEM_FIELDS)
      for (const hidden of ['channel_id', 'channel_name', 'ip', 'other', 'username', 'token_id']) {
        t.notOk(hidden in item, `no ${hidden}`)
      }
    }
    t.strictSame(items[0], { id: a4, ...a4Shown })
    t.notOk(res.payload.includes('203.0.113.9'), 'the ip is nowhere in the body')
    t.notOk(res.payload.includes('admin_info'), 'other is nowhere in the body')
    t.match(res.payload, /"quota":5000000000[,}]/, 'a bigint quota is a JSON number')
    t.match(res.payload, new RegExp(`"id":${a4}[,}]`), 'the id is a JSON number')
  })
})

t.test('paging', async (t) => {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 100_000 })
  const owner = await createUser(app.db)
  const key = await createApiKey(app.db, owner.id)
  const inserted = await insertLogs(app.db, Array.from({ length: 1005 }, (_, i) => ({
    user_id: owner.id, created_at: 1_700_000_000 + i, type: 2, token_id: key.id
  })))
  const newestFirst = [...inserted].reverse()
  const get = (query: Record<string, string>) => app.inject({ url: '/api/log/token', query: { key: key.key, ...query } })

  t.test('p defaults to 1 and page_size to 100', async (t) => {
    const res = await get({})
    t.equal(res.statusCode, 200)
    t.strictSame(ids(res), newestFirst.slice(0, 100))
  })

  t.test('p and page_size page through the rows', async (t) => {
    t.strictSame(ids(await get({ p: '2' })), newestFirst.slice(100, 200), 'p=2, default size')
    t.strictSame(ids(await get({ p: '3', page_size: '7' })), newestFirst.slice(14, 21), 'p=3, size 7')
    t.strictSame(ids(await get({ page_size: '1' })), newestFirst.slice(0, 1), 'size 1')
    t.strictSame(ids(await get({ page_size: '1000' })), newestFirst.slice(0, 1000), 'size 1000')
    t.strictSame(ids(await get({ p: '2', page_size: '1000' })), newestFirst.slice(1000), 'the last partial page')
    t.strictSame(ids(await get({ p: '50' })), [], 'past the end')
  })

  t.test('page_size outside 1..1000 or not an integer: 400 naming it', async (t) => {
    for (const pageSize of ['0', '1001', '-1', 'abc', '1.5']) {
      assertBadRequest(t, await get({ page_size: pageSize }), /page_size/, JSON.stringify(pageSize))
    }
  })

  t.test('p below 1 or not an integer: 400 naming it', async (t) => {
    for (const p of ['0', '-3', 'x', '2.5']) {
      assertBadRequest(t, await get({ p }), /\bp\b/, JSON.stringify(p))
    }
  })
})

t.test('CORS', async (t) => {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 100_000 })
  const owner = await createUser(app.db, { role: 10 })
  const key = await createApiKey(app.db, owner.id)
  const origin = 'https://status.example.com'

  t.test('Access-Control-Allow-Origin: * on a 200 and on a 401', async (t) => {
    const ok = await app.inject({ url: '/api/log/token', query: { key: key.key }, headers: { origin } })
    t.equal(ok.statusCode, 200)
    t.equal(ok.headers['access-control-allow-origin'], '*')

    const refused = await app.inject({ url: '/api/log/token', query: { key: 'nope' }, headers: { origin } })
    t.equal(refused.statusCode, 401)
    t.equal(refused.headers['access-control-allow-origin'], '*')

    const missing = await app.inject({ url: '/api/log/token', headers: { origin } })
    t.equal(missing.statusCode, 401)
    t.equal(missing.headers['access-control-allow-origin'], '*')
  })

  t.test('the preflight is answered and allows Authorization', async (t) => {
    for (const url of ['/api/log/token', '/api/log/token/']) {
      const res = await app.inject({
        method: 'OPTIONS',
        url,
        headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' }
      })
      t.equal(res.statusCode, 204, url)
      t.equal(res.headers['access-control-allow-origin'], '*')
      t.match(String(res.headers['access-control-allow-headers']), /(^|,)\s*authorization\s*(,|$)/i)
      t.match(String(res.headers['access-control-allow-methods']), /\bGET\b/)
    }
  })

  t.test('no CORS headers on the other routes, nor on a preflight to them', async (t) => {
    for (const url of ['/api/log/self', '/api/log/', '/api/log']) {
      const res = await app.inject({ url, headers: { ...owner.headers, origin } })
      t.equal(res.statusCode, 200, url)
      t.strictSame(corsHeaders(res), [], `GET ${url}`)

      const preflight = await app.inject({
        method: 'OPTIONS',
        url,
        headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,new-api-user' }
      })
      t.strictSame(corsHeaders(preflight), [], `OPTIONS ${url}`)
    }
  })
})

/** An app whose /token route lets each client in three times an hour, called with one valid key. */
async function rateLimited (t: Test, overrides: Partial<Config> = {}) {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 3, TOKEN_RATE_LIMIT_WINDOW_MS: 3_600_000, ...overrides })
  const owner = await createUser(app.db)
  const key = await createApiKey(app.db, owner.id)
  return (headers: Record<string, string>, remoteAddress?: string) => app.inject({ url: '/api/log/token', query: { key: key.key }, headers, remoteAddress })
}

t.test('rate limit per client IP', async (t) => {
  t.test('the request over the limit gets a 429 with Retry-After, in the envelope', async (t) => {
    const call = await rateLimited(t)
    const get = (remoteAddress?: string) => call({ origin: 'https://x.example' }, remoteAddress)

    for (let i = 1; i <= 3; i++) t.equal((await get()).statusCode, 200, `request ${i}`)
    const limited = await get()
    t.equal(limited.statusCode, 429)
    const body = limited.json()
    t.equal(body.success, false)
    t.type(body.message, 'string')
    t.ok(body.message.length > 0, 'a message')
    t.notOk('data' in body)
    t.match(String(limited.headers['retry-after']), /^[1-9][0-9]*$/, 'Retry-After in seconds')
    t.equal(limited.headers['access-control-allow-origin'], '*', 'a browser can read the 429')

    t.equal((await get('10.1.2.3')).statusCode, 200, 'another client IP has its own bucket')
    t.equal((await get()).statusCode, 429, 'the first client is still limited')
  })

  t.test('behind a trusted proxy, X-Forwarded-For names the client', async (t) => {
    const call = await rateLimited(t, { TRUST_PROXY: 'true' })
    const get = (forwardedFor?: string) => call(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor })

    for (let i = 1; i <= 3; i++) t.equal((await get('203.0.113.1')).statusCode, 200, `request ${i}`)
    t.equal((await get('203.0.113.1')).statusCode, 429, 'the fourth from 203.0.113.1')
    t.equal((await get('203.0.113.2')).statusCode, 200, 'another forwarded client')
    t.equal((await get()).statusCode, 200, 'the proxy itself')
  })

  t.test('without a trusted proxy, X-Forwarded-For is ignored', async (t) => {
    const call = await rateLimited(t, { TRUST_PROXY: 'false' })
    const get = (forwardedFor: string) => call({ 'x-forwarded-for': forwardedFor })

    for (let i = 1; i <= 3; i++) t.equal((await get(`198.51.100.${i}`)).statusCode, 200, `request ${i}`)
    const limited = await get('198.51.100.99')
    t.equal(limited.statusCode, 429, 'a fresh X-Forwarded-For does not buy a fresh bucket')
    t.ok(limited.headers['retry-after'])
  })
})

t.test('a key or owner change takes effect within the cache TTL', async (t) => {
  const app = await buildTestApp(t, { AUTH_CACHE_TTL_MS: 300, TOKEN_RATE_LIMIT_MAX: 100_000 })
  const owner = await createUser(app.db)
  const other = await createUser(app.db)
  const key = await createApiKey(app.db, owner.id)
  const otherKey = await createApiKey(app.db, other.id)

  async function pollStatus (apiKey: string, want: number) {
    const deadline = Date.now() + 5000
    let status = (await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${apiKey}` } })).statusCode
    while (status !== want && Date.now() < deadline) {
      await sleep(50)
      status = (await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${apiKey}` } })).statusCode
    }
    return status
  }

  t.equal(await pollStatus(key.key, 200), 200, 'the key works (and is cached)')
  t.equal(await pollStatus(otherKey.key, 200), 200, 'the other key works (and is cached)')
  await app.db.updateTable('tokens').set({ status: 2 }).where('id', '=', key.id).execute()
  await app.db.updateTable('users').set({ status: 2 }).where('id', '=', other.id).execute()
  t.equal(await pollStatus(key.key, 401), 401, 'a disabled key is refused within a few seconds')
  t.equal(await pollStatus(otherKey.key, 401), 401, 'a key of a disabled owner is refused within a few seconds')
})
