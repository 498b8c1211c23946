import t from 'tap'
import pg from 'pg'
import { buildApp } from '../../src/app.js'
import { decodeCursor } from '../../src/lib/cursor.js'
import { buildBaselines } from '../../bench/baselines.js'
import { buildEndpoints, ENDPOINT_NAMES } from '../../bench/endpoints.js'
import { seededRng } from '../../bench/random.js'
import { commonWords, describeParams, idLikeWords, sampleParams } from '../../bench/sampler.js'
import { createTestDatabase, testConfig } from '../helpers/app.js'
import { insertTinyData } from './fixtures/tiny-data.js'

t.test('the sampler reads realistic parameters and every generated request is answered 200', async (t) => {
  const url = await createTestDatabase(t)
  // Rate limit left at its default: the harness raises it, these few requests stay below it.
  const app = await buildApp({ ...testConfig(), DATABASE_URL: url })
  t.teardown(() => app.close())
  const data = await insertTinyData(app.db)

  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const params = await sampleParams(client, { rng: seededRng(1) })

  t.test('users are classified by the rows they own', async (t) => {
    t.equal(params.rows, data.rows)
    t.equal(params.users.heavy[0]?.id, data.heavy.id, 'the heaviest user leads')
    t.equal(params.users.heavy[0]?.token, data.heavy.token)
    t.ok(params.users.empty.some((u) => u.id === data.empty.id), 'a user without rows is in the mix')
    t.notOk([...params.users.heavy, ...params.users.typical].some((u) => u.rows === 0))
    t.equal(params.admin.id, data.admin.id, 'the existing admin is used')
    t.equal(params.admin.created, false)
  })

  t.test('keys, names and keywords come from the data', async (t) => {
    t.equal(params.keys.heavy[0]?.userId, data.heavy.id)
    t.ok(params.models.includes('gpt-4o'))
    t.ok(params.channels.every((c) => c === 1 || c === 2))
    t.ok(params.tokenNamesByUser.get(data.heavy.id)?.includes(`default-${data.heavy.id}`))
    t.ok(params.rareKeywords.length > 0)
    for (const k of params.rareKeywords) {
      t.match(k.keyword, /^req_[0-9a-f]+$/)
      t.ok(k.matches >= 1 && k.matches <= 10, `${k.keyword} is rare`)
    }
    const heavyRare = params.rareKeywords.find((k) => k.keyword === data.reqId)
    if (heavyRare !== undefined) t.equal(heavyRare.owner.id, data.heavy.id, 'a rare keyword is searched by its owner')
    t.equal(params.commonKeywords[0], 'ratio')
  })

  t.test('deep cursors point into the heavy user history', async (t) => {
    t.ok(params.deepCursors.length > 0)
    for (const c of params.deepCursors) {
      t.equal(c.user.id, data.heavy.id)
      const { createdAt, id } = decodeCursor(c.cursor)
      const { rows } = await client.query('select count(*)::int as n from logs where user_id = $1 and (created_at, id) >= ($2, $3)', [c.user.id, createdAt, id])
      t.equal(rows[0].n, c.depth, 'the cursor skips exactly `depth` rows')
    }
  })

  t.test('the report part holds no credentials', async (t) => {
    const text = JSON.stringify(describeParams(params))
    t.notOk(text.includes(data.heavy.token))
    t.notOk(text.includes(data.keys[0]!.key))
  })

  t.test('every service endpoint answers its generated requests with 200', async (t) => {
    const endpoints = buildEndpoints(params, seededRng(2))
    t.strictSame(endpoints.map((e) => e.name), [...ENDPOINT_NAMES])
    for (const e of endpoints.filter((e) => e.server === 'service')) {
      t.equal(e.skip, undefined, `${e.name} runs`)
      for (let i = 0; i < 8; i++) {
        const req = e.next()
        const res = await app.inject({ method: req.method, url: req.path, headers: req.headers })
        t.equal(res.statusCode, 200, `${e.name} ${req.path}: ${res.statusCode === 200 ? '' : res.body}`)
      }
    }
  })

  t.test('the baselines answer static and naive', async (t) => {
    const baselines = await buildBaselines(url)
    t.teardown(() => baselines.close())
    const endpoints = buildEndpoints(params, seededRng(3)).filter((e) => e.server === 'baselines')
    t.strictSame(endpoints.map((e) => e.name), ['static', 'naive'])
    for (const e of endpoints) {
      const req = e.next()
      const res = await baselines.inject({ method: req.method, url: req.path })
      t.equal(res.statusCode, 200, e.name)
      if (e.name === 'static') t.equal(res.json().data.items.length, 20)
    }
    const heavy = await baselines.inject({ url: `/naive?user=${data.heavy.id}` })
    const rows = heavy.json().data as Array<{ user_id: number, created_at: string }>
    t.equal(rows.length, 20)
    t.ok(rows.every((r) => r.user_id === data.heavy.id))
    t.ok(Number(rows[0]!.created_at) >= Number(rows[19]!.created_at), 'newest first')
  })
})

t.test('a database without an admin gets bench_admin', async (t) => {
  const url = await createTestDatabase(t)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const first = await sampleParams(client, { rng: seededRng(4) })
  t.equal(first.admin.created, true)
  t.equal(first.rows, 0)
  t.strictSame(first.deepCursors, [])
  const { rows } = await client.query('select username, role, access_token from users where id = $1', [first.admin.id])
  t.match(rows[0], { username: 'bench_admin', role: 100, access_token: first.admin.token })
  const again = await sampleParams(client, { rng: seededRng(5) })
  t.match(again.admin, { id: first.admin.id, created: false }, 'found, not created, the next time')
  await client.query('update users set role = 1')
  await t.rejects(sampleParams(client, { createAdmin: false }), /no enabled admin/)
})

t.test('keyword helpers', async (t) => {
  t.strictSame(idLikeWords('upstream error (request id: req_0123456789abcdef) trace 9f8e7d6c5b4a3f2e1d'), ['req_0123456789abcdef', '9f8e7d6c5b4a3f2e1d'])
  t.strictSame(idLikeWords('model ratio 1.25, completion ratio 4.00'), [])
  const contents = [...Array(50).fill('model ratio 1.25, group ratio 1.00'), ...Array(50).fill('timeout while awaiting headers')]
  t.strictSame(commonWords(contents), ['ratio', 'model', 'group'])
  t.strictSame(commonWords([]), [])
})
