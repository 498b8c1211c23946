// Readers at an even pace, for the purge phase: one request every 1/rate s, open-loop (a stalled
// service does not slow the schedule down), each timed from the moment it was due, over a
// keep-alive agent of `connections` sockets. autocannon's rate limit sends each second's quota at
// the top of the second (every connection its share, back to back) and all connections' first
// requests at once: over a purge of one second, the readers' p99 measured those bursts and the
// start-up, not the purge (bench/RESULTS.md, run T).
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import type { BenchRequest } from './endpoints.js'
import type { LoadStats } from './load.js'

export interface PacedOptions {
  /** origin, e.g. http://127.0.0.1:3000 */
  url: string
  /** requests per second */
  rate: number
  /** sockets at most; requests due while all are busy wait for one, their wait counted */
  connections: number
  next: () => BenchRequest
}

export interface PacedSample {
  /** when the request was due, ms on performance.now()'s clock */
  dueMs: number
  latencyMs: number
  /** HTTP status, 0 for a connection error */
  status: number
}

export interface PacedLoad {
  /** Stops sending, waits for the requests in flight, and returns every request's sample. */
  stop: () => Promise<PacedSample[]>
}

export function startPaced (o: PacedOptions): PacedLoad {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections })
  const samples: PacedSample[] = []
  const inFlight = new Set<Promise<void>>()
  const interval = 1000 / o.rate
  const started = performance.now()
  let sent = 0
  const send = (dueMs: number): void => {
    const r = o.next()
    const done = new Promise<void>((resolve) => {
      const record = (status: number) => {
        samples.push({ dueMs, latencyMs: performance.now() - dueMs, status })
        inFlight.delete(done)
        resolve()
      }
      const req = http.request(`${o.url}${r.path}`, { method: r.method, headers: r.headers, agent }, (res) => {
        res.resume()
        res.on('end', () => record(res.statusCode ?? 0))
        res.on('error', () => record(0))
      })
      req.on('error', () => record(0))
      req.end()
    })
    inFlight.add(done)
  }
  // Every millisecond, whatever fell due since: the schedule stays even when a tick comes late.
  const timer = setInterval(() => {
    const now = performance.now()
    while (started + sent * interval <= now) send(started + sent++ * interval)
  }, 1)
  return {
    stop: async () => {
      clearInterval(timer)
      await Promise.all([...inFlight])
      agent.destroy()
      return samples
    }
  }
}

/** The samples due in [fromMs, toMs), summed up as LoadStats (durationS: the window's length). */
export function windowStats (samples: readonly PacedSample[], fromMs: number, toMs: number): LoadStats {
  const inWindow = samples.filter((s) => s.dueMs >= fromMs && s.dueMs < toMs)
  const latencies = inWindow.map((s) => s.latencyMs).sort((a, b) => a - b)
  const round = (n: number) => Math.round(n * 100) / 100
  // Nearest rank: the smallest latency at or above which p % of the requests fall.
  const pct = (p: number) => latencies.length === 0 ? 0 : round(latencies[Math.max(0, Math.ceil(p / 100 * latencies.length) - 1)]!)
  const statusCodes: Record<string, number> = {}
  for (const s of inWindow) if (s.status > 0) statusCodes[String(s.status)] = (statusCodes[String(s.status)] ?? 0) + 1
  const ok = inWindow.filter((s) => s.status >= 200 && s.status < 300).length
  const errors = inWindow.filter((s) => s.status === 0).length
  const durationS = Math.max(0, (toMs - fromMs) / 1000)
  return {
    requests: inWindow.length,
    durationS: round(durationS),
    reqPerSec: durationS > 0 ? Math.round(inWindow.length / durationS * 10) / 10 : 0,
    meanMs: latencies.length === 0 ? 0 : round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
    p50Ms: pct(50),
    p90Ms: pct(90),
    p99Ms: pct(99),
    maxMs: latencies.length === 0 ? 0 : round(latencies.at(-1)!),
    ok,
    non2xx: inWindow.length - ok - errors,
    errors,
    timeouts: 0,
    statusCodes
  }
}
