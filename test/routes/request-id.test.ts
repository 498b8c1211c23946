// X-Request-Id: kept from a trusted proxy, made up otherwise, on every answer and every log line.
import t from 'tap'
import { buildApp, loggerOptions, prettyLogs } from '../../src/app.js'
import { createTestDatabase, createUser, testConfig } from '../helpers/app.js'
import { captureLogs } from '../helpers/secrets.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

async function appWithLogs (t: Parameters<typeof createTestDatabase>[0], trustProxy: string) {
  const logs = captureLogs()
  const app = await buildApp({ ...testConfig({ TRUST_PROXY: trustProxy, STAT_FOLD_INTERVAL_MS: 0 }), DATABASE_URL: await createTestDatabase(t) }, {
    logger: { ...loggerOptions('debug'), stream: logs.stream }
  })
  t.teardown(() => app.close())
  const lines = () => logs.lines().map((l) => JSON.parse(l) as { reqId?: string, msg: string })
  return { app, lines }
}

t.test('without a trusted proxy every request gets a new id, on every kind of answer', async (t) => {
  const { app } = await appWithLogs(t, 'false')
  const admin = await createUser(app.db, { role: 100 })
  const answers = [
    await app.inject({ url: '/healthz' }),
    await app.inject({ url: '/api/log/', headers: admin.headers }),
    await app.inject({ url: '/api/log/' }),
    await app.inject({ url: '/api/log/?page_size=x', headers: admin.headers }),
    await app.inject({ url: '/nowhere' }),
    await app.inject({ url: '/api/log/?type=%00', headers: admin.headers })
  ]
  t.strictSame(answers.map((r) => r.statusCode), [200, 200, 401, 400, 404, 400])
  const ids = answers.map((r) => r.headers['x-request-id'])
  for (const id of ids) t.match(id, UUID, 'a UUID')
  t.equal(new Set(ids).size, ids.length, 'each its own')
  const sent = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'from-the-client' } })
  t.not(sent.headers['x-request-id'], 'from-the-client', 'a client\'s own id is not taken from an untrusted peer')
  t.match(sent.headers['x-request-id'], UUID)
})

t.test('a trusted proxy\'s id is kept, answered and on every log line of the request', async (t) => {
  // app.inject comes from 127.0.0.1.
  const { app, lines } = await appWithLogs(t, '127.0.0.1')
  const admin = await createUser(app.db, { role: 100 })
  const res = await app.inject({ method: 'DELETE', url: '/api/log/?target_timestamp=1000', headers: { ...admin.headers, 'x-request-id': 'f3a1c0de-proxy-42' } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-request-id'], 'f3a1c0de-proxy-42')
  const mine = lines().filter((l) => l.reqId === 'f3a1c0de-proxy-42')
  t.ok(mine.length >= 3, `${mine.length} lines carry it`)
  t.ok(mine.some((l) => l.msg === 'history purged'), 'the route\'s own line among them')
  t.ok(mine.some((l) => l.msg === 'request completed'), 'and the framework\'s')
  const bad = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'has spaces and\ttabs' } })
  t.match(bad.headers['x-request-id'], UUID, 'an id that could forge log text is replaced')
  const long = await app.inject({ url: '/healthz', headers: { 'x-request-id': 'a'.repeat(129) } })
  t.match(long.headers['x-request-id'], UUID, 'so is one over 128 characters')
})

t.test('pretty logs only for a person at a terminal outside production, unless asked', async (t) => {
  t.equal(prettyLogs('auto', undefined, true), true)
  t.equal(prettyLogs('auto', 'development', true), true)
  t.equal(prettyLogs('auto', 'production', true), false)
  t.equal(prettyLogs('auto', undefined, false), false, 'JSON into a pipe or a file')
  t.equal(prettyLogs('json', undefined, true), false)
  t.equal(prettyLogs('pretty', 'production', false), true)
  t.match(loggerOptions('info', true), { transport: { target: 'pino-pretty' } })
  t.notOk('transport' in loggerOptions('info', false), 'JSON: no transport, pino writes straight to stdout')
})
