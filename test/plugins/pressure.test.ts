// Load shedding: while the event loop lags or is busy beyond the configured limits, requests are
// answered 503 LOG_OVERLOADED with Retry-After, except /healthz, /readyz and /metrics.
import t from 'tap'
import { setImmediate as yieldLoop, setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import pressurePlugin, { OVERLOADED_RETRY_AFTER_S, STARTUP_GRACE_MS } from '../../src/plugins/pressure.js'
import { buildTestApp, createUser } from '../helpers/app.js'

type App = Awaited<ReturnType<typeof buildTestApp>>
type Load = ReturnType<App['memoryUsage']>

/**
 * Blocks the event loop in busy stretches of 300 ms until a sample of under-pressure (once a
 * second) shows it; returns right after that sample, so that its verdict holds for about a second.
 */
async function overload (app: App, sampled: (load: Load) => boolean): Promise<boolean> {
  let last = app.memoryUsage()
  for (let i = 0; i < 60; i++) {
    const until = Date.now() + 300
    while (Date.now() < until) { /* busy */ }
    // One turn of the loop: its timers (the delay monitor's, under-pressure's sampler) run.
    await yieldLoop()
    const now = app.memoryUsage()
    const fresh = now.eventLoopDelay !== last.eventLoopDelay || now.eventLoopUtilized !== last.eventLoopUtilized || now.heapUsed !== last.heapUsed
    if (fresh && sampled(now)) return true
    last = now
  }
  return false
}

/** Waits, idle, until the sample no longer shows the load (at most ~20 s). */
async function recover (app: App, sampled: (load: Load) => boolean): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (!sampled(app.memoryUsage())) return true
    await sleep(100)
  }
  return false
}

const overloaded = { success: false, message: `the service is overloaded, retry in ${OVERLOADED_RETRY_AFTER_S} seconds`, code: 'LOG_OVERLOADED' }

t.test('event loop delay over PRESSURE_MAX_EVENT_LOOP_DELAY_MS', async (t) => {
  const app = await buildTestApp(t, { PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 100, PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0, STAT_FOLD_INTERVAL_MS: 0 })
  const user = await createUser(app.db)
  const lagging = (load: Load) => load.eventLoopDelay > 100

  t.equal((await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 200, 'answers before')
  await sleep(STARTUP_GRACE_MS)

  // Warm: the exempt routes' first answers open connections and load the migrations.
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 200)

  t.ok(await overload(app, lagging), 'under-pressure sampled the lag')
  const shed = await app.inject({ url: '/api/log/self', headers: user.headers })
  t.equal(shed.statusCode, 503, 'shed')
  t.equal(shed.headers['retry-after'], String(OVERLOADED_RETRY_AFTER_S), 'with Retry-After')
  t.strictSame(shed.json(), overloaded, 'in the envelope')
  t.equal((await app.inject({ url: '/api/log/self' })).statusCode, 503, 'before authentication')
  t.equal((await app.inject({ url: '/nowhere' })).statusCode, 503, 'unknown routes too')
  t.ok(app.isUnderPressure(), 'still under pressure: the answers above were shed by it')

  t.ok(await overload(app, lagging), 'under-pressure sampled the lag again')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'healthz is exempt')
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200, 'readyz is exempt')
  const metrics = await app.inject({ url: '/metrics' })
  t.equal(metrics.statusCode, 200, 'metrics is exempt')
  t.ok(app.isUnderPressure(), 'still under pressure: the answers above were given under it')
  t.match(metrics.body, /^log_service_overloaded 1$/m, 'the metrics show the overload')
  t.match(metrics.body, /^log_service_http_errors_total\{code="LOG_OVERLOADED",operation="listSelfLogs"\} 2$/m, 'and count the shed requests by code')
  t.match(metrics.body, /^log_service_http_errors_total\{code="LOG_OVERLOADED",operation="not_found"\} 1$/m)

  t.ok(await recover(app, lagging), 'the lag is gone from the sample')
  t.equal((await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 200, 'answers again')
})

t.test('event loop utilization over PRESSURE_MAX_EVENT_LOOP_UTILIZATION', async (t) => {
  const app = await buildTestApp(t, { PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0, PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0.9, STAT_FOLD_INTERVAL_MS: 0 })
  const busy = (load: Load) => load.eventLoopUtilized > 0.9

  t.equal((await app.inject({ url: '/api/log/self' })).statusCode, 401, 'answers before')
  await sleep(STARTUP_GRACE_MS)
  t.ok(await overload(app, busy), 'under-pressure sampled the busy loop')
  const shed = await app.inject({ url: '/api/log/self' })
  t.equal(shed.statusCode, 503)
  t.strictSame(shed.json(), overloaded)
  t.ok(await recover(app, busy), 'the busy loop is gone from the sample')
  t.equal((await app.inject({ url: '/api/log/self' })).statusCode, 401, 'answers again')
})

t.test('0 turns each limit off', async (t) => {
  const app = await buildTestApp(t, { PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0, PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0, STAT_FOLD_INTERVAL_MS: 0 })
  t.ok(await overload(app, (load) => load.eventLoopDelay > 100 && load.eventLoopUtilized > 0.9), 'the loop lagged and was busy')
  t.equal((await app.inject({ url: '/api/log/self' })).statusCode, 401, 'nothing is shed')
})

t.test('nothing is shed during the start-up grace: start-up itself blocks the loop', async (t) => {
  const app = Fastify()
  await app.register(pressurePlugin, { maxEventLoopDelayMs: 100, maxEventLoopUtilization: 0, startupGraceMs: 60_000 })
  app.get('/x', async () => 'ok')
  t.teardown(() => app.close())
  await app.ready()
  t.ok(await overload(app as unknown as App, (load) => load.eventLoopDelay > 100), 'the loop lagged')
  t.ok(app.isUnderPressure(), 'under-pressure sees the pressure')
  t.equal((await app.inject({ url: '/x' })).statusCode, 200, 'but the request is served')
})
