// The purge phase's paced readers: an even schedule whatever the service does (open loop), each
// request timed from when it was due, and windows cut by due time.
import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { startPaced, windowStats, type PacedSample } from '../../bench/paced.js'

t.test('windowStats: the samples due in the window, nearest-rank percentiles, statuses', async (t) => {
  const samples: PacedSample[] = [
    ...Array.from({ length: 100 }, (_, i) => ({ dueMs: 1000 + i, latencyMs: i + 1, status: 200 })),
    { dueMs: 999, latencyMs: 5000, status: 200 }, // due before the window
    { dueMs: 1100, latencyMs: 5000, status: 200 } // due at its end: the next window's
  ]
  const s = windowStats(samples, 1000, 1100)
  t.equal(s.requests, 100)
  t.equal(s.p50Ms, 50)
  t.equal(s.p99Ms, 99)
  t.equal(s.maxMs, 100)
  t.equal(s.reqPerSec, 1000, '100 requests in 0.1 s')
  const mixed = windowStats([
    { dueMs: 0, latencyMs: 1, status: 200 },
    { dueMs: 1, latencyMs: 1, status: 503 },
    { dueMs: 2, latencyMs: 1, status: 0 }
  ], 0, 10)
  t.match(mixed, { ok: 1, non2xx: 1, errors: 1, statusCodes: { 200: 1, 503: 1 } })
  t.match(windowStats([], 0, 10), { requests: 0, p99Ms: 0, maxMs: 0 })
})

t.test('startPaced keeps its schedule while the service falls behind, and counts the wait', async (t) => {
  // One socket and 30 ms a response against a request every 5 ms: a closed loop would slow to the
  // service's pace and report 30 ms each; the paced readers keep sending and report the queue.
  const server = http.createServer((_req, res) => { setTimeout(() => res.end('ok'), 30) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const { port } = server.address() as AddressInfo
  const paced = startPaced({
    url: `http://127.0.0.1:${port}`,
    rate: 200,
    connections: 1,
    next: () => ({ method: 'GET', path: '/', headers: {} })
  })
  await sleep(300)
  const samples = (await paced.stop()).sort((a, b) => a.dueMs - b.dueMs)
  t.ok(samples.length >= 10, `sent on schedule (${samples.length} requests)`)
  const gaps = samples.slice(1).map((s, i) => s.dueMs - samples[i]!.dueMs)
  t.ok(gaps.every((g) => Math.abs(g - 5) < 1e-6), 'due every 5 ms, evenly')
  t.ok(samples.every((s) => s.status === 200), 'every request answered')
  t.ok(samples.at(-1)!.latencyMs > samples[0]!.latencyMs + 100, 'the last waited behind the others, and that wait is counted')
})
