// GET /api/log/stat (admin) and GET /api/log/self/stat (user): quota over [start, end], rpm and
// tpm over the last 60 seconds, exact over the rows as stored.
import t from 'tap'
import { buildTestApp, createTestDatabase, createUser, insertLogs } from '../helpers/app.js'
import { buildAppOn, lockLogs, whileChanged } from '../helpers/session.js'

// A fixed window far in the past; the rpm/tpm rows sit a few seconds before "now".
const base = 1_700_000_000
const window = { start_timestamp: String(base), end_timestamp: String(base + 200) }

type Assert = Pick<typeof t, 'equal' | 'match'>

t.test('admin stat', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10, username: 'stat_admin' })
  const alice = await createUser(app.db, { username: 'alice' })
  const bob = await createUser(app.db, { username: 'bob' })
  const now = Math.floor(Date.now() / 1000)

  // Every row is alice / tk1 / m1 / g1 / channel 1 unless it says otherwise: each filter row
  // differs from the rest in exactly one column, each quota is a distinct power of two.
  const a = { user_id: alice.id, username: 'alice', token_name: 'tk1', model_name: 'm1', group: 'g1', channel_id: 1 }
  await insertLogs(app.db, [
    { ...a, created_at: base, type: 2, quota: 1 }, // window start: counted
    { ...a, created_at: base + 100, type: 2, quota: 2 },
    { ...a, created_at: base + 200, type: 2, quota: 4 }, // window end: counted
    { ...a, created_at: base - 1, type: 2, quota: 8 }, // one second before the window
    { ...a, created_at: base + 201, type: 2, quota: 16 }, // one second after the window
    { ...a, created_at: base + 100, type: 1, quota: 32 },
    { ...a, created_at: base + 100, type: 5, quota: 64 },
    { ...a, created_at: base + 50, type: 2, quota: 128, token_name: 'tk2' },
    { ...a, created_at: base + 50, type: 2, quota: 256, model_name: 'm2' },
    { ...a, created_at: base + 50, type: 2, quota: 512, group: 'g2' },
    { ...a, created_at: base + 50, type: 2, quota: 1024, user_id: bob.id, username: 'bob' },
    { ...a, created_at: base + 50, type: 2, quota: 2048, channel_id: 2 },
    // rpm / tpm: now-5 and now-40 are inside the last 60 s, now-90 is not (the server's clock only moves on) (quota 0 on all of them,
    // so they change no quota sum)
    { ...a, created_at: now - 5, type: 2, prompt_tokens: 1, completion_tokens: 2 },
    { ...a, created_at: now - 40, type: 2, prompt_tokens: 10, completion_tokens: 20 },
    { ...a, created_at: now - 90, type: 2, prompt_tokens: 100, completion_tokens: 200 },
    { ...a, created_at: now - 5, type: 1, prompt_tokens: 1000, completion_tokens: 2000 },
    { ...a, created_at: now - 5, type: 2, prompt_tokens: 10000, completion_tokens: 20000, token_name: 'tk2' },
    { ...a, created_at: now - 5, type: 2, prompt_tokens: 100000, completion_tokens: 200000, user_id: bob.id, username: 'bob', channel_id: 2 }
  ])

  const stat = async (t: Assert, query: Record<string, string>) => {
    const res = await app.inject({ url: '/api/log/stat', headers: admin.headers, query })
    t.equal(res.statusCode, 200, `200 for ${JSON.stringify(query)}`)
    const body = res.json()
    t.equal(body.success, true)
    t.equal(body.message, '')
    return body.data
  }

  // Recent rows of type 2: alice tk1 (3, 30), alice tk2 (30000), bob channel 2 (300000).
  const recentConsume = { rpm: 4, tpm: 3 + 30 + 30000 + 300000 }

  t.test('quota over the window, both ends inclusive, type 2 by default; numbers, not strings', async (t) => {
    t.strictSame(await stat(t, window), { quota: 1 + 2 + 4 + 128 + 256 + 512 + 1024 + 2048, ...recentConsume })
  })

  t.test('type 0 is every type, any other type is that type', async (t) => {
    t.strictSame(await stat(t, { ...window, type: '0' }), { quota: 3975 + 32 + 64, rpm: 5, tpm: 330033 + 3000 })
    t.strictSame(await stat(t, { ...window, type: '1' }), { quota: 32, rpm: 1, tpm: 3000 })
    t.strictSame(await stat(t, { ...window, type: '5' }), { quota: 64, rpm: 0, tpm: 0 })
    t.strictSame(await stat(t, { ...window, type: '3' }), { quota: 0, rpm: 0, tpm: 0 })
  })

  t.test('an open-ended window', async (t) => {
    t.equal((await stat(t, { start_timestamp: String(base + 100) })).quota, 2 + 4 + 16)
    t.equal((await stat(t, { end_timestamp: String(base + 100) })).quota, 1 + 2 + 8 + 128 + 256 + 512 + 1024 + 2048)
    t.equal((await stat(t, {})).quota, 1 + 2 + 4 + 8 + 16 + 128 + 256 + 512 + 1024 + 2048)
    t.equal((await stat(t, { start_timestamp: String(base + 100), end_timestamp: String(base + 100) })).quota, 2)
  })

  t.test('the window does not narrow rpm and tpm', async (t) => {
    t.strictSame(await stat(t, { start_timestamp: String(base), end_timestamp: String(base) }), { quota: 1, ...recentConsume })
  })

  t.test('token_name, model_name and group filter quota, rpm and tpm', async (t) => {
    t.strictSame(await stat(t, { ...window, token_name: 'tk2' }), { quota: 128, rpm: 1, tpm: 30000 })
    t.strictSame(await stat(t, { ...window, token_name: 'tk1' }), { quota: 3975 - 128, rpm: 3, tpm: 300033 })
    t.strictSame(await stat(t, { ...window, model_name: 'm2' }), { quota: 256, rpm: 0, tpm: 0 })
    t.strictSame(await stat(t, { ...window, model_name: 'm1' }), { quota: 3975 - 256, ...recentConsume })
    t.strictSame(await stat(t, { ...window, group: 'g2' }), { quota: 512, rpm: 0, tpm: 0 })
    t.strictSame(await stat(t, { ...window, group: 'g1' }), { quota: 3975 - 512, ...recentConsume })
  })

  t.test('admin filters by username and channel', async (t) => {
    t.strictSame(await stat(t, { ...window, username: 'bob' }), { quota: 1024, rpm: 1, tpm: 300000 })
    t.strictSame(await stat(t, { ...window, username: 'alice' }), { quota: 3975 - 1024, rpm: 3, tpm: 30033 })
    t.strictSame(await stat(t, { ...window, channel: '2' }), { quota: 2048, rpm: 1, tpm: 300000 })
    t.strictSame(await stat(t, { ...window, channel: '1' }), { quota: 3975 - 2048, rpm: 3, tpm: 30033 })
    t.strictSame(await stat(t, { ...window, username: 'bob', channel: '2' }), { quota: 0, rpm: 1, tpm: 300000 })
    t.strictSame(await stat(t, { ...window, username: 'nobody' }), { quota: 0, rpm: 0, tpm: 0 })
  })

  t.test('start after end is a 400 naming the parameter', async (t) => {
    const res = await app.inject({ url: '/api/log/stat', headers: admin.headers, query: { start_timestamp: String(base + 1), end_timestamp: String(base) } })
    t.equal(res.statusCode, 400)
    t.match(res.json(), { success: false, message: /timestamp/ })
  })

  t.test('bad parameters are 400s', async (t) => {
    for (const query of [{ type: 'abc' }, { type: '8' }, { type: '-1' }, { start_timestamp: 'x' }, { end_timestamp: '-1' }, { start_timestamp: 'Infinity' }, { channel: 'x' }] as Array<Record<string, string>>) {
      const res = await app.inject({ url: '/api/log/stat', headers: admin.headers, query })
      t.equal(res.statusCode, 400, JSON.stringify(query))
      t.equal(res.json().success, false)
    }
  })

  t.test('a user is refused, without credentials it is a 401', async (t) => {
    const res = await app.inject({ url: '/api/log/stat', headers: alice.headers })
    t.equal(res.statusCode, 403)
    t.equal(res.json().success, false)
    const anon = await app.inject({ url: '/api/log/stat' })
    t.equal(anon.statusCode, 401)
    t.equal(anon.json().success, false)
  })

  t.test('a row written with plain SQL counts at once', async (t) => {
    await insertLogs(app.db, [{ ...a, created_at: base + 10, type: 2, quota: 4096 }])
    t.equal((await stat(t, window)).quota, 3975 + 4096)
  })
})

t.test('admin stat on an empty table, and with quotas beyond 32 bits', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 100 })
  const empty = await app.inject({ url: '/api/log/stat', headers: admin.headers })
  t.equal(empty.statusCode, 200)
  t.strictSame(empty.json(), { success: true, message: '', data: { quota: 0, rpm: 0, tpm: 0 } })

  const now = Math.floor(Date.now() / 1000)
  await insertLogs(app.db, [
    { user_id: admin.id, created_at: base, type: 2, quota: 3_000_000_000 },
    { user_id: admin.id, created_at: base, type: 2, quota: 3_000_000_000 },
    { user_id: admin.id, created_at: now - 5, type: 2, prompt_tokens: 2_000_000_000, completion_tokens: 2_000_000_000 },
    { user_id: admin.id, created_at: now - 5, type: 2, prompt_tokens: 2_000_000_000, completion_tokens: 1 }
  ])
  const res = await app.inject({ url: '/api/log/stat/', headers: admin.headers, query: window })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json().data, { quota: 6_000_000_000, rpm: 2, tpm: 6_000_000_001 })
  t.match(res.body, /"quota":6000000000\b/, 'a JSON number, not a string')
})

t.test('self stat', async (t) => {
  const app = await buildTestApp(t)
  const carol = await createUser(app.db, { username: 'carol' })
  const other = await createUser(app.db, { username: 'dave' })
  const now = Math.floor(Date.now() / 1000)

  const c = { user_id: carol.id, username: 'carol', token_name: 'tk1', model_name: 'm1', group: 'g1', channel_id: 1 }
  await insertLogs(app.db, [
    { ...c, created_at: base, type: 2, quota: 1 },
    { ...c, created_at: base + 200, type: 2, quota: 2 },
    { ...c, created_at: base + 201, type: 2, quota: 4 }, // after the window
    { ...c, created_at: base + 100, type: 1, quota: 8 },
    { ...c, created_at: base + 100, type: 2, quota: 16, token_name: 'tk2' },
    { ...c, created_at: base + 100, type: 2, quota: 32, model_name: 'm2' },
    { ...c, created_at: base + 100, type: 2, quota: 64, group: 'g2' },
    { ...c, created_at: base + 100, type: 2, quota: 128, channel_id: 2 },
    // written under the name carol had before; still hers
    { ...c, created_at: base + 100, type: 2, quota: 256, username: 'carol_old' },
    { ...c, created_at: now - 5, type: 2, prompt_tokens: 1, completion_tokens: 2 },
    { ...c, created_at: now - 40, type: 2, prompt_tokens: 10, completion_tokens: 20, username: 'carol_old' },
    { ...c, created_at: now - 90, type: 2, prompt_tokens: 100, completion_tokens: 200 },
    { ...c, created_at: now - 5, type: 1, prompt_tokens: 1000, completion_tokens: 2000 },
    // another user's rows under carol's old and new names: never hers
    { ...c, user_id: other.id, username: 'carol', created_at: base + 100, type: 2, quota: 1 << 20 },
    { ...c, user_id: other.id, username: 'carol_new', created_at: base + 100, type: 2, quota: 1 << 21 },
    { ...c, user_id: other.id, username: 'carol_new', created_at: now - 5, type: 2, prompt_tokens: 1 << 20 },
    { ...c, user_id: other.id, username: 'dave', created_at: now - 5, type: 2, prompt_tokens: 1 << 21, quota: 1 << 22 }
  ])
  // carol renamed in users: her rows stay hers, keyed by user_id
  await app.db.updateTable('users').set({ username: 'carol_new' }).where('id', '=', carol.id).execute()

  const stat = async (t: Assert, query: Record<string, string>, user = carol) => {
    const res = await app.inject({ url: '/api/log/self/stat', headers: user.headers, query })
    t.equal(res.statusCode, 200, `200 for ${JSON.stringify(query)}`)
    t.match(res.json(), { success: true, message: '' })
    return res.json().data
  }

  const windowQuota = 1 + 2 + 16 + 32 + 64 + 128 + 256
  const recent = { rpm: 2, tpm: 33 }

  t.test('the caller\'s rows by user_id, whatever username they carry', async (t) => {
    t.strictSame(await stat(t, window), { quota: windowQuota, ...recent })
  })

  t.test('type, window and name filters', async (t) => {
    t.strictSame(await stat(t, { ...window, type: '0' }), { quota: windowQuota + 8, rpm: 3, tpm: 3033 })
    t.strictSame(await stat(t, { ...window, type: '1' }), { quota: 8, rpm: 1, tpm: 3000 })
    t.strictSame(await stat(t, {}), { quota: windowQuota + 4, ...recent })
    t.strictSame(await stat(t, { ...window, token_name: 'tk2' }), { quota: 16, rpm: 0, tpm: 0 })
    t.strictSame(await stat(t, { ...window, model_name: 'm2' }), { quota: 32, rpm: 0, tpm: 0 })
    t.strictSame(await stat(t, { ...window, group: 'g2' }), { quota: 64, rpm: 0, tpm: 0 })
    t.strictSame(await stat(t, { ...window, group: 'g1' }), { quota: windowQuota - 64, ...recent })
  })

  t.test('username and channel are ignored on self', async (t) => {
    t.strictSame(await stat(t, { ...window, username: 'dave' }), { quota: windowQuota, ...recent })
    t.strictSame(await stat(t, { ...window, username: 'carol_old' }), { quota: windowQuota, ...recent })
    t.strictSame(await stat(t, { ...window, channel: '2' }), { quota: windowQuota, ...recent })
    t.strictSame(await stat(t, { ...window, channel: 'abc' }), { quota: windowQuota, ...recent })
  })

  t.test('the other user sees only their own rows', async (t) => {
    t.strictSame(await stat(t, window, other), { quota: (1 << 20) + (1 << 21), rpm: 2, tpm: (1 << 20) + (1 << 21) })
  })

  t.test('a user with no rows gets zeros', async (t) => {
    const erin = await createUser(app.db, { username: 'erin' })
    t.strictSame(await stat(t, {}, erin), { quota: 0, rpm: 0, tpm: 0 })
  })

  t.test('start after end is a 400', async (t) => {
    const res = await app.inject({ url: '/api/log/self/stat', headers: carol.headers, query: { start_timestamp: String(base + 1), end_timestamp: String(base) } })
    t.equal(res.statusCode, 400)
    t.match(res.json(), { success: false, message: /timestamp/ })
  })

  t.test('without credentials it is a 401', async (t) => {
    const res = await app.inject({ url: '/api/log/self/stat' })
    t.equal(res.statusCode, 401)
    t.equal(res.json().success, false)
  })
})

t.test('a failing stat answers 503 with its failure message', async (t) => {
  const url = await createTestDatabase(t)
  // Every statement is bounded at 100 ms; the stat query waits on a table lock held below.
  const app = await buildAppOn(t, url, { DB_STATEMENT_TIMEOUT_MS: 100 })
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)

  await whileChanged(t, url, lockLogs, async () => {
    for (const [path, headers] of [['/api/log/stat', admin.headers], ['/api/log/self/stat', user.headers]] as const) {
      const res = await app.inject({ url: path, headers })
      t.equal(res.statusCode, 503, path)
      t.match(res.json(), { success: false, message: '获取统计信息失败' })
      t.equal(res.json().message, '获取统计信息失败')
    }
  })

  // A few tries: with a 100 ms limit, a connection's first all-time stat over the partitioned
  // layout (every partition of logs to open) can run past it on a busy machine.
  let res = await app.inject({ url: '/api/log/stat', headers: admin.headers })
  for (let i = 0; i < 5 && res.statusCode === 503; i++) res = await app.inject({ url: '/api/log/stat', headers: admin.headers })
  t.equal(res.statusCode, 200, 'answers again once the lock is gone')
  t.strictSame(res.json().data, { quota: 0, rpm: 0, tpm: 0 })
})

t.test('rpm and tpm count the last 60 seconds only: rows stamped in the future are not in them', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  const now = Math.floor(Date.now() / 1000)
  await insertLogs(app.db, [
    { user_id: user.id, created_at: now - 10, type: 2, prompt_tokens: 1, completion_tokens: 2 },
    // A gateway's clock, or a client's, gone wrong: these would count for ever.
    { user_id: user.id, created_at: now + 3600, type: 2, prompt_tokens: 10, completion_tokens: 20 },
    { user_id: user.id, created_at: 4_102_444_800, type: 2, prompt_tokens: 100, completion_tokens: 200 }
  ])
  for (const [url, headers] of [['/api/log/stat', admin.headers], ['/api/log/self/stat', user.headers]] as const) {
    const res = await app.inject({ url, headers })
    t.equal(res.statusCode, 200)
    t.match(res.json().data, { rpm: 1, tpm: 3 }, `${url}: only the row of the last minute`)
  }
})
