// The rare-keyword search side by side with the unindexed ILIKE it replaces: the same statement,
// once as the planner likes it (pg_trgm GIN through a bitmap scan) and once with bitmap scans off,
// which leaves the trigram index unusable (GIN only serves bitmap scans), as on new-api's schema.
import type pg from 'pg'
import { likePattern } from './sampler.js'
import type { IlikeResult } from './summary.js'

const SEARCH_SQL = `
  select id, user_id, created_at, type, content, token_name, model_name, quota, prompt_tokens,
         completion_tokens, use_time, is_stream, "group", request_id
  from logs where content ilike $1
  order by created_at desc, id desc limit 100`

interface PlanNode { 'Node Type': string, 'Index Name'?: string, Plans?: PlanNode[] }

/** The scan nodes of a plan, e.g. "Bitmap Index Scan (idx_logs_content_trgm)". */
export function scanNodes (plan: PlanNode): string {
  const found: string[] = []
  const walk = (node: PlanNode) => {
    if (node['Node Type'].includes('Scan')) found.push(node['Index Name'] === undefined ? node['Node Type'] : `${node['Node Type']} (${node['Index Name']})`)
    for (const child of node.Plans ?? []) walk(child)
  }
  walk(plan)
  return found.join(', ')
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits

/** Runs the statement in a transaction with the given settings; wall time in ms and the rows. */
async function timed (client: pg.ClientBase, settings: string[], pattern: string, explain: boolean) {
  await client.query('begin')
  try {
    // jit off as in the service's pool; no statement timeout: the unindexed scan may take seconds.
    for (const s of ['set local jit = off', 'set local statement_timeout = 0', ...settings]) await client.query(s)
    if (explain) {
      const { rows } = await client.query(`explain (format json) ${SEARCH_SQL}`, [pattern])
      return { ms: 0, rows: 0, plan: scanNodes((rows[0] as { 'QUERY PLAN': Array<{ Plan: PlanNode }> })['QUERY PLAN'][0]!.Plan) }
    }
    const start = process.hrtime.bigint()
    const { rowCount } = await client.query(SEARCH_SQL, [pattern])
    return { ms: Number(process.hrtime.bigint() - start) / 1e6, rows: rowCount ?? 0, plan: '' }
  } finally {
    await client.query('commit')
  }
}

const UNINDEXED = ['set local enable_bitmapscan = off']

export async function measureIlike (client: pg.ClientBase, keyword: string, opts: { runs?: number, endpointP50Ms?: number | null } = {}): Promise<IlikeResult> {
  const runs = opts.runs ?? 3
  const pattern = likePattern(keyword)
  const unindexedPlan = (await timed(client, UNINDEXED, pattern, true)).plan
  const indexedPlan = (await timed(client, [], pattern, true)).plan
  // One warm-up of the cheap side; the unindexed side is its own warm-up (median of 3).
  await timed(client, [], pattern, false)
  const unindexed: number[] = []
  const indexed: number[] = []
  let matches = 0
  for (let i = 0; i < runs; i++) {
    const u = await timed(client, UNINDEXED, pattern, false)
    const x = await timed(client, [], pattern, false)
    unindexed.push(round(u.ms))
    indexed.push(round(x.ms, 3))
    matches = x.rows
  }
  const unindexedMs = median(unindexed)
  const indexedMs = median(indexed)
  const endpointP50 = opts.endpointP50Ms ?? null
  return {
    keyword_length: keyword.length,
    matches,
    unindexed_ms: unindexedMs,
    indexed_ms: indexedMs,
    unindexed_runs_ms: unindexed,
    indexed_runs_ms: indexed,
    unindexed_plan: unindexedPlan,
    indexed_plan: indexedPlan,
    speedup: indexedMs > 0 ? round(unindexedMs / indexedMs, 1) : 0,
    speedup_vs_endpoint_p50: endpointP50 !== null && endpointP50 > 0 ? round(unindexedMs / endpointP50, 1) : null
  }
}
