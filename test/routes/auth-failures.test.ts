// Guessing credentials is limited per client IP: after AUTH_FAILURE_LIMIT failed authentications
// in a window, that IP is answered 429 with Retry-After before any lookup.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { buildTestApp, createApiKey, createUser } from '../helpers/app.js'

t.test('failed authentications are limited per client IP, on the user and key routes alike', async (t) => {
  const app = await buildTestApp(t, { AUTH_FAILURE_LIMIT: 3, AUTH_FAILURE_WINDOW_MS: 60_000 })
  const user = await createUser(app.db)
  const key = await createApiKey(app.db, user.id)
  const guesser = '127.0.0.7'
  const guess = async (i: number) => await app.inject({ url: '/api/log/self', remoteAddress: guesser, headers: { authorization: `Bearer guess-${i}-0123456789abcdef`, 'new-api-user': String(user.id) } })

  for (let i = 0; i < 2; i++) t.equal((await guess(i)).statusCode, 401, `guess ${i + 1}: 401`)
  const wrongKey = await app.inject({ url: '/api/log/token?key=sk-not-a-key-0123456789', remoteAddress: guesser })
  t.equal(wrongKey.statusCode, 401, 'a wrong API key counts too (third failure)')

  const limited = await guess(3)
  t.equal(limited.statusCode, 429, 'the fourth attempt is refused')
  t.match(limited.json(), { success: false, code: 'LOG_RATE_LIMITED' })
  t.ok(Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 60, `with Retry-After (${String(limited.headers['retry-after'])})`)
  const right = await app.inject({ url: '/api/log/self', remoteAddress: guesser, headers: user.headers })
  t.equal(right.statusCode, 429, 'even with the right token: the guesser does not learn it was right')
  t.equal((await app.inject({ url: `/api/log/token?key=sk-${key.key}`, remoteAddress: guesser })).statusCode, 429, 'the key route too')

  t.equal((await app.inject({ url: '/api/log/self', remoteAddress: '127.0.0.8', headers: user.headers })).statusCode, 200, 'another client is not affected')
  const missing = await app.inject({ url: '/api/log/self', remoteAddress: '127.0.0.9' })
  t.equal(missing.statusCode, 401)
  for (let i = 0; i < 5; i++) await app.inject({ url: '/api/log/self', remoteAddress: '127.0.0.9' })
  t.equal((await app.inject({ url: '/api/log/self', remoteAddress: '127.0.0.9', headers: user.headers })).statusCode, 200, 'requests without credentials guess nothing and are not counted')
})

t.test('0 turns the limit off', async (t) => {
  const app = await buildTestApp(t, { AUTH_FAILURE_LIMIT: 0 })
  const user = await createUser(app.db)
  for (let i = 0; i < 20; i++) {
    await app.inject({ url: '/api/log/self', headers: { authorization: `Bearer guess-${i}-0123456789abcdef`, 'new-api-user': String(user.id) } })
  }
  t.equal((await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 200)
})

t.test('wrong ingest keys and metrics tokens count as failures too', async (t) => {
  const ingestKey = 'ingest-key-for-failure-tests-0123456789'
  const metricsToken = 'metrics-token-for-failure-tests-0123'
  const app = await buildTestApp(t, { AUTH_FAILURE_LIMIT: 2, INGEST_KEY: ingestKey, METRICS_TOKEN: metricsToken })
  const ingest = async (key: string, ip: string) => await app.inject({
    method: 'POST', url: '/api/log/', remoteAddress: ip, headers: { authorization: `Bearer ${key}` }, payload: [{ user_id: 1, type: 2 }]
  })
  for (let i = 0; i < 2; i++) t.equal((await ingest(`wrong-ingest-key-${i}-0123456789abcdef`, '127.0.1.1')).statusCode, 401, `ingest guess ${i + 1}: 401`)
  const refused = await ingest(ingestKey, '127.0.1.1')
  t.equal(refused.statusCode, 429, 'past the limit, even the right ingest key is refused')
  t.match(refused.json(), { success: false, code: 'LOG_RATE_LIMITED' })
  t.equal((await ingest(ingestKey, '127.0.1.2')).statusCode, 200, 'another client writes')

  const scrape = async (token: string) => await app.inject({ url: '/metrics', remoteAddress: '127.0.1.3', headers: { authorization: `Bearer ${token}` } })
  for (let i = 0; i < 2; i++) t.equal((await scrape(`wrong-metrics-token-${i}-0123456789`)).statusCode, 401, `metrics guess ${i + 1}: 401`)
  t.equal((await scrape(metricsToken)).statusCode, 429, 'past the limit, the right metrics token is refused')
})

t.test('with REDIS_URL, failures are counted across instances', async (t) => {
  const shared = { AUTH_FAILURE_LIMIT: 2, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: `log-service-test:${randomUUID()}:` }
  const first = await buildTestApp(t, shared)
  const second = await buildTestApp(t, shared)
  const user = await createUser(first.db)
  const secondUser = await createUser(second.db)
  const ip = '127.0.2.1'
  for (let i = 0; i < 2; i++) {
    const res = await first.inject({ url: '/api/log/self', remoteAddress: ip, headers: { authorization: `Bearer guess-${i}-0123456789abcdef`, 'new-api-user': String(user.id) } })
    t.equal(res.statusCode, 401, `guess ${i + 1} on the first instance`)
  }
  const elsewhere = await second.inject({ url: '/api/log/self', remoteAddress: ip, headers: secondUser.headers })
  t.equal(elsewhere.statusCode, 429, 'the second instance refuses the same client')
  t.ok(Number(elsewhere.headers['retry-after']) > 0, 'with Retry-After')
  t.equal((await second.inject({ url: '/api/log/self', remoteAddress: '127.0.2.2', headers: secondUser.headers })).statusCode, 200, 'another client is served')
})

t.test('Redis down: each instance still limits on its own, and authentication works', async (t) => {
  // Port 1 on loopback: nothing listens, every Redis command fails at once.
  const app = await buildTestApp(t, { AUTH_FAILURE_LIMIT: 2, REDIS_URL: 'redis://127.0.0.1:1', REDIS_KEY_PREFIX: `log-service-test:${randomUUID()}:` })
  const user = await createUser(app.db)
  t.equal((await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 200, 'a right token is served')
  const ip = '127.0.3.1'
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({ url: '/api/log/self', remoteAddress: ip, headers: { authorization: `Bearer guess-${i}-0123456789abcdef`, 'new-api-user': String(user.id) } })
    t.equal(res.statusCode, 401, `guess ${i + 1}`)
  }
  t.equal((await app.inject({ url: '/api/log/self', remoteAddress: ip, headers: user.headers })).statusCode, 429, 'limited by this instance alone')
})
