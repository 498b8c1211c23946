// Before anything is measured: let the service fold the stat deltas a bulk load left behind (its
// rollup triggers turn every COPY or INSERT into delta rows, folded in the background), then
// VACUUM ANALYZE, so that the run measures the service's steady state rather than the seed's
// aftermath (dead delta rows, missing statistics; autovacuum may be off, as on the research VM).
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'

export interface SettleResult {
  autovacuum: string
  /** delta rows waiting to be folded when the service had started (null: no such table) */
  pending_deltas: number | null
  waited_s: number
  /** null: skipped (--no-vacuum) */
  vacuum_s: number | null
}

async function pendingDeltas (client: pg.ClientBase): Promise<number | null> {
  const { rows } = await client.query("select to_regclass('logs_stat_delta') is not null as present")
  if ((rows[0] as { present: boolean }).present !== true) return null
  const { rows: count } = await client.query('select count(*) as n from logs_stat_delta')
  return Number((count[0] as { n: string }).n)
}

export async function settle (client: pg.ClientBase, opts: { vacuum: boolean, timeoutMs?: number, log: (line: string) => void }): Promise<SettleResult> {
  const { rows } = await client.query("select current_setting('autovacuum') as v")
  const autovacuum = String((rows[0] as { v: string }).v)
  const started = Date.now()
  const pending = await pendingDeltas(client)
  let left = pending
  let lastLog = Date.now()
  while (left !== null && left > 0 && Date.now() - started < (opts.timeoutMs ?? 15 * 60_000)) {
    if (Date.now() - lastLog >= 10_000) {
      opts.log(`[bench] waiting for the service to fold ${left.toLocaleString('en-US')} stat delta rows…`)
      lastLog = Date.now()
    }
    await sleep(500)
    left = await pendingDeltas(client)
  }
  if (left !== null && left > 0) opts.log(`[bench] warning: ${left.toLocaleString('en-US')} stat delta rows still unfolded`)
  const waited = (Date.now() - started) / 1000

  let vacuumSeconds: number | null = null
  if (opts.vacuum) {
    const t0 = Date.now()
    await client.query('vacuum (analyze)')
    vacuumSeconds = (Date.now() - t0) / 1000
  }
  return { autovacuum, pending_deltas: pending, waited_s: Math.round(waited * 10) / 10, vacuum_s: vacuumSeconds === null ? null : Math.round(vacuumSeconds * 10) / 10 }
}
