// GET /metrics: the app's own Prometheus registry, in the text exposition format.
import t from 'tap'
import { buildTestApp, createUser, insertLogs } from '../helpers/app.js'
import { buildAppOn } from '../helpers/session.js'

type Series = Map<string, number>

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$/
const COMMENT = /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/

/**
 * The exposition text as series → value, labels sorted (`name{a="1",b="2"}`); the lines that are
 * neither a sample nor a HELP/TYPE comment are returned beside it.
 */
function parseExposition (text: string): { series: Series, malformed: string[] } {
  const series: Series = new Map()
  const malformed: string[] = []
  for (const line of text.split('\n')) {
    if (line === '' || COMMENT.test(line)) continue
    const m = SAMPLE.exec(line)
    if (m === null) {
      malformed.push(line)
      continue
    }
    const labels = m[2] === undefined ? '' : `{${[...m[2].slice(1, -1).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort().join(',')}}`
    series.set(`${m[1]}${labels}`, Number(m[3]))
  }
  return { series, malformed }
}

async function scrape (app: Awaited<ReturnType<typeof buildTestApp>>, headers: Record<string, string> = {}) {
  const res = await app.inject({ url: '/metrics', headers })
  return { res, ...parseExposition(res.body) }
}

const DAY_AGO = Math.floor(Date.now() / 1000) - 86_400

t.test('after a few requests', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0 })
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  // The fold is off: the triggers' deltas wait, a day old.
  await insertLogs(app.db, [
    { user_id: user.id, created_at: DAY_AGO, type: 2 },
    { user_id: user.id, created_at: DAY_AGO + 60, type: 2 }
  ])

  for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/healthz' })).statusCode, 200)
  t.equal((await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 200)
  t.equal((await app.inject({ url: '/api/log/self' })).statusCode, 401)
  t.equal((await app.inject({ url: '/api/log/self?page_size=0', headers: user.headers })).statusCode, 400)
  t.equal((await app.inject({ url: '/nowhere' })).statusCode, 404)
  const batch = await app.inject({ method: 'POST', url: '/api/log/', headers: admin.headers, payload: [{ user_id: user.id, type: 2 }, { user_id: user.id, type: 2 }] })
  t.equal(batch.statusCode, 200)
  const ndjson = await app.inject({
    method: 'POST',
    url: '/api/log/',
    headers: { ...admin.headers, 'content-type': 'application/x-ndjson' },
    payload: `{"user_id":${user.id},"type":2}\n{"user_id":${user.id},"type":2}\n{"user_id":${user.id},"type":2}\n`
  })
  t.equal(ndjson.statusCode, 200)
  t.equal(ndjson.json().data, 3)

  const { res, series, malformed } = await scrape(app)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8$/, 'the Prometheus text format')
  t.strictSame(malformed, [], 'every line is a sample or a HELP/TYPE comment')
  t.ok(series.size > 50, `${series.size} series`)

  t.test('requests and latency per operationId and status', async (t) => {
    t.equal(series.get('log_service_http_requests_total{operation="healthz",status="200"}'), 3)
    t.equal(series.get('log_service_http_requests_total{operation="listSelfLogs",status="200"}'), 1)
    t.equal(series.get('log_service_http_requests_total{operation="listSelfLogs",status="401"}'), 1)
    t.equal(series.get('log_service_http_requests_total{operation="listSelfLogs",status="400"}'), 1)
    t.equal(series.get('log_service_http_requests_total{operation="not_found",status="404"}'), 1)
    t.equal(series.get('log_service_http_requests_total{operation="ingestLogs",status="200"}'), 2)
    t.equal(series.get('log_service_http_request_duration_seconds_count{operation="healthz",status="200"}'), 3)
    t.equal(series.get('log_service_http_request_duration_seconds_bucket{le="+Inf",operation="healthz",status="200"}'), 3)
    t.ok((series.get('log_service_http_request_duration_seconds_sum{operation="listSelfLogs",status="200"}') ?? 0) > 0, 'a duration was observed')
  })

  t.test('errors by the envelope\'s code', async (t) => {
    t.equal(series.get('log_service_http_errors_total{code="LOG_UNAUTHORIZED",operation="listSelfLogs"}'), 1)
    t.equal(series.get('log_service_http_errors_total{code="LOG_BAD_PARAMETER",operation="listSelfLogs"}'), 1)
    t.equal(series.get('log_service_http_errors_total{code="LOG_NOT_FOUND",operation="not_found"}'), 1)
    t.notOk([...series.keys()].some((k) => k.startsWith('log_service_http_errors_total{') && k.includes('operation="healthz"')), 'no error counted for a success')
  })

  t.test('ingested rows by path', async (t) => {
    t.equal(series.get('log_service_ingested_rows_total{path="batch"}'), 2)
    t.equal(series.get('log_service_ingested_rows_total{path="ndjson"}'), 3)
  })

  t.test('database pools', async (t) => {
    t.equal(series.get('log_service_db_pool_max{pool="request"}'), 4, 'DB_POOL_MAX')
    t.ok((series.get('log_service_db_pool_max{pool="maintenance"}') ?? 0) >= 1)
    t.ok((series.get('log_service_db_pool_size{pool="request"}') ?? 0) >= 1, 'the requests opened connections')
    for (const pool of ['request', 'maintenance']) {
      for (const gauge of ['size', 'idle', 'waiting']) t.type(series.get(`log_service_db_pool_${gauge}{pool="${pool}"}`), 'number', `${gauge} of ${pool}`)
    }
    t.equal(series.get('log_service_db_pool_waiting{pool="request"}'), 0)
  })

  t.test('the fold backlog, with the fold off', async (t) => {
    // The two rows of a day ago, the ingested ones (one statement each: one delta row per user, minute and type).
    t.ok((series.get('log_service_stat_fold_backlog_rows') ?? 0) >= 3, `backlog ${series.get('log_service_stat_fold_backlog_rows')}`)
    const lag = series.get('log_service_stat_fold_lag_seconds') ?? -1
    t.ok(lag > 86_400 - 120 && lag < 86_400 + 3600, `lag ${lag} s: the oldest delta's rows are a day old`)
  })

  t.test('background work and the runtime', async (t) => {
    t.equal(series.get('log_service_maintenance_running{job="fold"}'), 0)
    t.equal(series.get('log_service_maintenance_runs_total{job="fold"}'), 0, 'the fold is off')
    t.equal(series.get('log_service_retention_enabled'), 0)
    t.equal(series.get('log_service_purge_rows_deleted_total'), 0)
    t.equal(series.get('log_service_overloaded'), 0)
    t.type(series.get('nodejs_eventloop_lag_seconds'), 'number', 'event loop lag (default metrics)')
    t.type(series.get('process_cpu_user_seconds_total'), 'number')
  })

  t.test('a purge shows in the purge counters', async (t) => {
    const purge = await app.inject({ method: 'DELETE', url: `/api/log/?target_timestamp=${DAY_AGO + 3600}`, headers: admin.headers })
    t.equal(purge.statusCode, 200)
    t.equal(purge.json().data, 2)
    const after = (await scrape(app)).series
    t.equal(after.get('log_service_purge_rows_deleted_total'), 2)
    t.equal(after.get('log_service_maintenance_runs_total{job="purge"}'), 1)
    t.equal(after.get('log_service_http_requests_total{operation="healthz",status="200"}'), 3, 'scrapes do not count other routes')
    t.equal(after.get('log_service_http_requests_total{operation="metrics",status="200"}'), 1, 'the first scrape is counted')
  })

  t.test('another app in the same process has its own registry', async (t) => {
    const other = await buildTestApp(t)
    const { series } = await scrape(other)
    t.equal(series.get('log_service_http_requests_total{operation="healthz",status="200"}'), undefined)
    t.equal(series.get('log_service_ingested_rows_total{path="batch"}'), 0, 'nor the rows the first one ingested')
    t.type(series.get('log_service_db_pool_max{pool="request"}'), 'number', 'but gauges of its own')
  })
})

t.test('without a database: the backlog reads -1, the scrape still answers', async (t) => {
  const app = await buildAppOn(t, 'postgres://postgres@127.0.0.1:1/x', { DB_CONNECT_TIMEOUT_MS: 200, STAT_FOLD_INTERVAL_MS: 0 })
  const { res, series } = await scrape(app)
  t.equal(res.statusCode, 200)
  t.equal(series.get('log_service_stat_fold_backlog_rows'), -1)
  t.equal(series.get('log_service_stat_fold_lag_seconds'), -1)
})

t.test('METRICS_TOKEN: a bearer token is needed', async (t) => {
  const token = 'metrics-token-0123456789abcdef'
  const app = await buildTestApp(t, { METRICS_TOKEN: token })

  for (const [label, headers] of [['no credentials', {}], ['a wrong token', { authorization: 'Bearer metrics-token-0123456789abcdeX' }], ['a shorter token', { authorization: 'Bearer metrics' }]] as const) {
    const res = await app.inject({ url: '/metrics', headers })
    t.equal(res.statusCode, 401, `${label}: 401`)
    t.match(res.headers['content-type'], /application\/json/)
    t.match(res.json(), { success: false, code: 'LOG_UNAUTHORIZED', message: /METRICS_TOKEN/ }, `${label}: the envelope`)
  }

  const { res, series } = await scrape(app, { authorization: `Bearer ${token}` })
  t.equal(res.statusCode, 200, 'the token: 200')
  t.equal(series.get('log_service_http_errors_total{code="LOG_UNAUTHORIZED",operation="metrics"}'), 3, 'the refused scrapes are counted')
  t.notMatch(res.body, token, 'the token is not in the output')
})
