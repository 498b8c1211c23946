// autocannon as a library: every request's path and headers come from a generator, and latency is
// kept in a microsecond histogram of our own (autocannon's rounds to whole milliseconds).
import { createHistogram } from 'node:perf_hooks'
import autocannon from 'autocannon'
import type { BenchRequest } from './endpoints.js'

export interface LoadOptions {
  /** origin, e.g. http://127.0.0.1:3000 */
  url: string
  connections: number
  /** seconds (fractions allowed) */
  duration: number
  next: () => BenchRequest
  /** total requests per second across all connections; unset = as fast as the server answers */
  rate?: number
}

export interface LoadStats {
  requests: number
  durationS: number
  reqPerSec: number
  meanMs: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  ok: number
  non2xx: number
  /** connection errors, timeouts included */
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
}

export interface RunningLoad {
  stop: () => void
  result: Promise<LoadStats>
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits

export function startLoad (opts: LoadOptions): RunningLoad {
  const latencyUs = createHistogram()
  const rate = opts.rate !== undefined && opts.rate > 0 ? Math.max(1, Math.round(opts.rate)) : undefined
  let instance: autocannon.Instance | undefined
  const result = new Promise<LoadStats>((resolve, reject) => {
    instance = autocannon({
      url: opts.url,
      connections: opts.connections,
      duration: opts.duration,
      timeout: 30,
      // Clients stop at the first sample tick after `duration`: ticks of 100 ms keep a short run short.
      sampleInt: 100,
      requests: [{
        setupRequest: (request) => {
          const r = opts.next()
          return { ...request, method: r.method, path: r.path, headers: { ...request.headers, ...r.headers } }
        }
      }],
      // autocannon's coordinated-omission correction takes 1/rate as milliseconds, which inflates
      // every latency under a rate; a paced load is measured as it is answered instead.
      ...(rate === undefined ? {} : { overallRate: rate, ignoreCoordinatedOmission: true })
    }, (err: unknown, r: autocannon.Result) => {
      if (err) {
        reject(err instanceof Error ? err : new Error(String(err)))
        return
      }
      const statusCodes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]))
      const requests = r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx']
      const pct = (p: number) => requests === 0 ? 0 : round(latencyUs.percentile(p) / 1000)
      resolve({
        requests,
        durationS: r.duration,
        reqPerSec: r.duration > 0 ? round(requests / r.duration, 1) : 0,
        meanMs: requests === 0 ? 0 : round(latencyUs.mean / 1000),
        p50Ms: pct(50),
        p90Ms: pct(90),
        p99Ms: pct(99),
        maxMs: requests === 0 ? 0 : round(latencyUs.max / 1000),
        ok: r['2xx'],
        non2xx: r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        statusCodes
      })
    })
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => {
      latencyUs.record(Math.max(1, Math.round(responseTimeMs * 1000)))
    })
  })
  return { stop: () => instance?.stop(), result }
}

export async function runLoad (opts: LoadOptions): Promise<LoadStats> {
  return await startLoad(opts).result
}
