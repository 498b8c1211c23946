// The database stops mid-run (fast shutdown) and comes back: while it is down every route answers
// a prompt 503 envelope and /readyz says so; once it is back, the same app serves again (its pools,
// readiness and the stat fold recover by themselves, no restart).
import t from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp, type App } from '../../src/app.js'
import { createApiKey, createUser, testConfig, type TestUser } from '../helpers/app.js'
import { assertRollupsExact, assertStatRoutesExact, assertUnavailable, blockedBy, ownedPostgres, until } from '../helpers/faults.js'

const T = 1_700_000_000

interface Call {
  label: string
  /** the route's failure message */
  message: string
  send: (app: App) => Promise<LightMyRequestResponse>
}

/** One call to every route that reads or writes the database, as its audience makes it. */
function everyRoute (admin: TestUser, user: TestUser, apiKey: string): Call[] {
  const get = (url: string, headers: Record<string, string>) => (app: App) => app.inject({ url, headers })
  const row = JSON.stringify({ user_id: user.id, created_at: T + 500, type: 2, quota: 3, prompt_tokens: 4, completion_tokens: 5 })
  return [
    { label: 'admin list', message: '获取日志失败', send: get('/api/log/', admin.headers) },
    { label: 'self list', message: '获取日志失败', send: get('/api/log/self', user.headers) },
    { label: 'admin search', message: '搜索日志失败', send: get('/api/log/search?keyword=hello', admin.headers) },
    { label: 'self search', message: '搜索日志失败', send: get('/api/log/self/search?keyword=hello', user.headers) },
    { label: 'admin stat', message: '获取统计信息失败', send: get('/api/log/stat?type=0', admin.headers) },
    { label: 'self stat', message: '获取统计信息失败', send: get('/api/log/self/stat?type=0', user.headers) },
    { label: 'admin export', message: '导出日志失败', send: get('/api/log/export?format=ndjson', admin.headers) },
    { label: 'self export', message: '导出日志失败', send: get('/api/log/self/export', user.headers) },
    { label: 'token logs', message: '获取日志失败', send: get('/api/log/token', { authorization: `Bearer sk-${apiKey}` }) },
    {
      label: 'ingest (JSON)',
      message: '写入日志失败',
      send: (app) => app.inject({ method: 'POST', url: '/api/log/', headers: { ...admin.headers, 'content-type': 'application/json' }, payload: `[${row}]` })
    },
    {
      label: 'ingest (NDJSON)',
      message: '写入日志失败',
      send: (app) => app.inject({ method: 'POST', url: '/api/log/', headers: { ...admin.headers, 'content-type': 'application/x-ndjson' }, payload: `${row}\n${row}\n` })
    },
    { label: 'purge', message: '删除日志失败', send: (app) => app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${T - 100}`, headers: admin.headers }) }
  ]
}

const backlogGauge = (body: string) => Number(/^log_service_stat_fold_backlog_rows (-?[0-9]+)$/m.exec(body)?.[1])

t.test('the database stops and starts again under a running app', { timeout: 90_000 }, async (t) => {
  const server = await ownedPostgres(t)
  // The request pool's connect timeout stays the default (5 s): a refused connection must fail at
  // once, not by running into it.
  const app = await buildApp({ ...testConfig({ STAT_FOLD_INTERVAL_MS: 50 }), DATABASE_URL: server.url })
  t.teardown(() => app.close())
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  const apiKey = await createApiKey(app.db, user.id)
  await app.db.insertInto('logs').values([
    { user_id: user.id, created_at: T - 200, type: 2, quota: 10, content: 'hello', token_id: apiKey.id },
    { user_id: user.id, created_at: T + 100, type: 2, quota: 20, content: 'hello', token_id: apiKey.id },
    { user_id: admin.id, created_at: T + 200, type: 1, quota: 40 }
  ]).execute()
  const calls = everyRoute(admin, user, apiKey.key)

  // Warm: every pool has connections open (the request pool, the fold's, readiness's).
  for (const call of calls) t.equal((await call.send(app)).statusCode, 200, `${call.label} answers before the stop`)
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200, 'ready before the stop')
  t.ok(await until(() => app.maintenance.status().fold.runs > 2), 'the fold runs')
  const rowsBefore = (await app.db.selectFrom('logs').select('id').execute()).length

  await t.test('while the database is down', { timeout: 30_000 }, async (t) => {
    // One request is in the database as it stops: waiting on a lock another session holds.
    const locker = await server.client()
    const observer = await server.client()
    await locker.query('begin')
    await locker.query('lock table logs in access exclusive mode')
    const inFlight = app.inject({ url: '/api/log/', headers: admin.headers })
    await blockedBy(observer, locker)
    await server.stop()
    // Fast shutdown ends the locker's session too: the list may get its lock and finish first.
    const answer = await inFlight
    t.comment(`the list in flight answered ${answer.statusCode}`)
    if (answer.statusCode === 200) t.equal(answer.json().success, true, 'a list in flight that finished first answers in full')
    else assertUnavailable(t, answer, '获取日志失败', 'a list in flight as the database stops')
    for (const call of calls) assertUnavailable(t, await call.send(app), call.message, `${call.label} while down`)
    const ready = await app.inject({ url: '/readyz' })
    t.equal(ready.statusCode, 503, 'not ready')
    t.match(ready.json(), { success: false, code: 'LOG_DB_UNAVAILABLE', data: { status: 'not_ready', database: 'unavailable' } })
    t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'alive: liveness makes no database call')
    const metrics = await app.inject({ url: '/metrics' })
    t.equal(metrics.statusCode, 200, 'metrics answer')
    t.equal(backlogGauge(metrics.body), -1, 'the fold backlog is reported unknown, not made up')
    const failures = app.maintenance.status().fold.failures
    t.ok(await until(() => app.maintenance.status().fold.failures > failures + 1), 'the fold fails on its timer, and goes on trying')
    t.type(app.maintenance.status().fold.lastError, 'string', 'and says why')
  })

  await t.test('once the database is back', { timeout: 30_000 }, async (t) => {
    await server.start()
    const ready = await app.inject({ url: '/readyz' })
    t.equal(ready.statusCode, 200, 'ready again')
    t.strictSame(ready.json(), { success: true, message: '', data: { status: 'ready', database: 'ok', migrations: 'current' } })
    for (const call of calls) {
      const res = await call.send(app)
      t.equal(res.statusCode, 200, `${call.label} answers again`)
    }
    // What was written before the stop is all there, nothing from the failed calls, and the
    // ingests since (one JSON row, two NDJSON rows).
    const list = await app.inject({ url: '/api/log/', headers: admin.headers, query: { type: '0' } })
    t.match(list.json().data, { total: rowsBefore + 3, total_exact: true }, 'the rows from before, and the three ingested since')

    t.ok(await until(async () => {
      const { fold } = app.maintenance.status()
      const pending = await app.db.selectFrom('logs_stat_delta').select('n').execute()
      return fold.lastError === null && !fold.running && pending.length === 0
    }), 'the fold catches up by itself, its error cleared')
    await assertRollupsExact(t, app.db, 'after the restart')
    await assertStatRoutesExact(t, app, admin, user, 'after the restart')
    const metrics = await app.inject({ url: '/metrics' })
    t.equal(backlogGauge(metrics.body), 0, 'the fold backlog is read again')
  })
})
