// A history purge of the oldest 30 % of the table through DELETE /api/log/, timed while readers
// keep reading; their p99 before the purge is the yardstick for their p99 during it.
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import type { BenchRequest } from './endpoints.js'
import { startPaced, windowStats } from './paced.js'
import type { PurgeResult } from './summary.js'

export const PURGE_FRACTION = 0.3

/** One HTTP request with no timeout: a purge of millions of rows may take minutes. */
export async function httpRequest (url: string, method: string, headers: Record<string, string>): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** DELETE /api/log/?target_timestamp=…: the status, the rows it reports deleted, and what went wrong. */
export async function sendPurge (serviceUrl: string, target: number, adminHeaders: Record<string, string>): Promise<{ status: number, deleted: number, error?: string }> {
  try {
    const res = await httpRequest(`${serviceUrl}/api/log/?target_timestamp=${target}`, 'DELETE', adminHeaders)
    const body = JSON.parse(res.body) as { data?: unknown, message?: string }
    if (res.status === 200 && typeof body.data === 'number') return { status: res.status, deleted: body.data }
    return { status: res.status, deleted: 0, error: body.message ?? res.body.slice(0, 200) }
  } catch (err) {
    return { status: 0, deleted: 0, error: err instanceof Error ? err.message : String(err) }
  }
}

/** created_at of the row at the given fraction of the table, oldest first (an index-only walk). */
export async function purgeTarget (client: pg.ClientBase, rows: number, fraction = PURGE_FRACTION) {
  const offset = Math.floor(rows * fraction)
  const { rows: found } = await client.query('select created_at from logs order by created_at offset $1 limit 1', [offset])
  const target = Number((found[0] as { created_at: string } | undefined)?.created_at ?? 0)
  const { rows: counted } = await client.query('select count(*) as n from logs where created_at < $1', [target])
  return { target, expected: Number((counted[0] as { n: string }).n) }
}

export interface PurgePhaseOptions {
  client: pg.ClientBase
  serviceUrl: string
  adminHeaders: Record<string, string>
  rows: number
  readers: () => BenchRequest
  connections: number
  /** readers' total req/s, evenly paced */
  readersRate: number
  /** how long the readers run before the purge */
  beforeSeconds: number
}

export async function runPurgePhase (o: PurgePhaseOptions): Promise<PurgeResult> {
  const { target, expected } = await purgeTarget(o.client, o.rows)
  // One paced load throughout, split by when each request was due: its first second (connections
  // opening) counts in neither window, the `beforeSeconds` before the purge are the yardstick, and
  // what fell due from the purge's request to its answer is "during".
  const readers = startPaced({ url: o.serviceUrl, connections: o.connections, next: o.readers, rate: o.readersRate })
  await sleep(1000 + o.beforeSeconds * 1000)
  const startedMs = performance.now()
  const { status, deleted, error } = await sendPurge(o.serviceUrl, target, o.adminHeaders)
  const endedMs = performance.now()
  const samples = await readers.stop()
  const before = windowStats(samples, startedMs - o.beforeSeconds * 1000, startedMs)
  const duringStats = windowStats(samples, startedMs, endedMs)
  const seconds = (endedMs - startedMs) / 1000

  return {
    target_timestamp: target,
    expected_rows: expected,
    deleted_rows: deleted,
    status,
    seconds: Math.round(seconds * 1000) / 1000,
    rows_per_sec: seconds > 0 ? Math.round(deleted / seconds) : 0,
    readers_rate: o.readersRate,
    readers_before: before,
    readers_during: duringStats,
    p99_ratio: before.p99Ms > 0 && duringStats.requests > 0 ? Math.round(duringStats.p99Ms / before.p99Ms * 100) / 100 : null,
    ...(error === undefined ? {} : { error })
  }
}
