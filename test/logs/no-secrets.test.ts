// Every test app (buildTestApp) logs into a capture that is searched for every secret the tests
// handed out (test/helpers/secrets.ts): over the suite, the logs of all its requests. This file
// checks that the search finds what it must, and runs the requests most likely to leak.
import t from 'tap'
import { buildTestApp, createApiKey, createUser } from '../helpers/app.js'
import { captureLogs, registerSecret } from '../helpers/secrets.js'

t.test('the search finds a registered secret in a log line, and only registered ones', async (t) => {
  const logs = captureLogs()
  registerSecret('sk-planted-0123456789')
  logs.stream.write('{"msg":"hello"}\n')
  logs.stream.write('{"msg":"oops sk-planted-0123456789"}\n')
  logs.stream.write('{"msg":"short abc"}\n')
  t.strictSame(logs.leaks(), ['{"msg":"oops [secret sk-…]"}'])
})

t.test('tokens, keys and configured keys stay out of the logs of requests that carry them', async (t) => {
  const ingestKey = 'ingest-' + 'k'.repeat(40)
  const metricsToken = 'metrics-' + 'm'.repeat(40)
  const app = await buildTestApp(t, { LOG_LEVEL: 'trace', INGEST_KEY: ingestKey, METRICS_TOKEN: metricsToken })
  const admin = await createUser(app.db, { role: 100 })
  const user = await createUser(app.db)
  const key = await createApiKey(app.db, user.id)
  const disabled = await createApiKey(app.db, user.id, { status: 2 })
  const urls = [
    `/api/log/token?key=${key.key}`, `/api/log/token?key=sk-${key.key}`, `/api/log/token?KEY=${key.key}`,
    `/api/log/token?key+=${key.key}`, `/api/log/token?%6Bey=${key.key}`, `/api/log/token?key=${disabled.key}`,
    `/api/log/token?x=1&key=${key.key}&key=${key.key}`
  ]
  for (const url of urls) await app.inject({ url })
  await app.inject({ url: '/api/log/self', headers: user.headers })
  await app.inject({ url: '/api/log/self', headers: { ...user.headers, 'new-api-user': String(admin.id) } })
  await app.inject({ url: '/api/log/', headers: admin.headers })
  await app.inject({ url: '/api/log/', headers: { authorization: `Bearer ${user.token}`, 'new-api-user': String(user.id) } })
  await app.inject({ method: 'POST', url: '/api/log/', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' }, payload: [{ user_id: user.id, type: 2 }] })
  await app.inject({ method: 'POST', url: '/api/log/', headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json' }, payload: '{broken' })
  await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${metricsToken}` } })
  await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${ingestKey}` } })
  await app.inject({ url: `/nowhere?key=${key.key}`, headers: admin.headers })
  // The assertion is the search in buildTestApp's teardown; here, that the requests were logged.
  t.pass(`${urls.length + 9} requests made with secrets in their URLs and headers`)
})
