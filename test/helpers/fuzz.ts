import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import fc from 'fast-check'
import type { App } from '../../src/app.js'
import type { Database } from '../../src/db/types.js'
import { ERROR_CODES } from '../../src/errors.js'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { DELTA_TABLE, keyColumns, ROLLUPS } from '../../src/queries/rollups/model.js'
import { createApiKey, createUser, insertLogs, type TestUser } from './app.js'

// Shared by the fuzz tests (test/fuzz/): the routes the app registers, the credentials and rows a
// fuzzed app starts with, a checksum of every table a request could change, and fast-check's
// run count and seed (FC_RUNS, FC_SEED).

/** The fast-check parameters: FC_SEED replays a failure, FC_RUNS scales every property's run count. */
export function fuzzSettings (defaultRuns: number): { seed: number, runs: number } {
  const seed = process.env.FC_SEED === undefined ? randomBytes(4).readInt32LE() : Number(process.env.FC_SEED)
  const runs = process.env.FC_RUNS === undefined ? defaultRuns : Number(process.env.FC_RUNS)
  if (!Number.isInteger(seed) || !Number.isInteger(runs) || runs < 1) throw new Error(`FC_SEED and FC_RUNS must be integers (FC_RUNS >= 1), got ${process.env.FC_SEED} and ${process.env.FC_RUNS}`)
  return { seed, runs }
}

type Tap = { fail: (message: string) => void, pass: (message: string) => void }

/** Runs a property; a failure is one failed assertion whose message holds the seed to replay it with. */
export async function holds<T> (t: Tap, label: string, property: fc.IAsyncProperty<T>, settings: { seed: number, runs: number }): Promise<boolean> {
  try {
    await fc.assert(property, { numRuns: settings.runs, seed: settings.seed, includeErrorInReport: true })
    t.pass(`${label}: ${settings.runs} runs (FC_SEED=${settings.seed})`)
    return true
  } catch (err) {
    t.fail(`${label} failed; replay with FC_SEED=${settings.seed} FC_RUNS=${settings.runs}\n${(err as Error).message}`)
    return false
  }
}

export interface RouteParam {
  name: string
  schema: { type?: string, minimum?: number, maximum?: number, maxLength?: number, enum?: string[] }
}

export interface FuzzRoute {
  /** as the router holds it; `*` matches any rest of the path */
  path: string
  methods: string[]
  /** the query parameters of all its methods, as the OpenAPI document describes them (none when it is not documented) */
  params: RouteParam[]
  /** each method's own: a parameter of another method on the same path is an unknown name, ignored */
  paramsOf: (method: string) => RouteParam[]
}

/**
 * Every route of the app: paths and methods from the router's own tree (app.printRoutes), so a route
 * added later is fuzzed too; query parameters from the OpenAPI document, where the route is in it.
 */
export async function listRoutes (app: App): Promise<FuzzRoute[]> {
  const doc = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { parameters?: Array<RouteParam & { in: string }> }>> }
  const documented = new Map<string, Record<string, { parameters?: Array<RouteParam & { in: string }> }>>()
  for (const [path, ops] of Object.entries(doc.paths)) documented.set(withoutSlash(path), ops)

  const routes: FuzzRoute[] = []
  const stack: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)[├└]── (.+?)(?: \(([^)]*)\))?$/.exec(line)
    if (m === null) continue
    const depth = m[1]!.length / 4
    const path = (stack[depth - 1] ?? '') + m[2]!
    stack.length = depth
    stack.push(path)
    if (m[3] === undefined) continue
    const methods = m[3].split(',').map((s) => s.trim())
    const ops = documented.get(withoutSlash(path.replace(/\/\*$/, '')))
    // HEAD is the GET route's (Fastify adds it; the document has no HEAD operations).
    const paramsOf = (method: string) => (ops?.[method === 'HEAD' ? 'get' : method.toLowerCase()]?.parameters ?? [])
      .filter((p) => p.in === 'query').map((p): RouteParam => ({ name: p.name, schema: p.schema }))
    const params = new Map<string, RouteParam>()
    for (const method of methods) for (const p of paramsOf(method)) params.set(p.name, p)
    routes.push({ path, methods, params: [...params.values()], paramsOf })
  }
  return routes
}

const withoutSlash = (path: string) => path.length > 1 ? path.replace(/\/$/, '') : path

/** A concrete URL path for a route: `*` becomes a segment the fuzzer picks. */
export function concretePath (route: FuzzRoute, rest: string): string {
  return route.path.endsWith('*') ? route.path.slice(0, -1) + rest : route.path
}

/** Every table a request could change: its row count and a digest of its rows. */
export const CHECKED_TABLES = ['users', 'tokens', 'channels', 'logs', DELTA_TABLE, ...ROLLUPS.map((r) => r.table)]

export async function tableChecksums (db: Kysely<Database>): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const table of CHECKED_TABLES) {
    const { rows: [r] } = await sql<{ n: number, digest: string }>`
      select count(*) as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as digest
      from ${sql.table(table)} x`.execute(db)
    out[table] = `${r!.n} rows, ${r!.digest}`
  }
  return out
}

/** The rollup tables that differ from a recomputation from logs, once the pending deltas are folded. */
export async function rollupMismatches (app: App): Promise<string[]> {
  while (await foldStatDeltas(app.maintenanceDb) > 0);
  const differ: string[] = []
  for (const r of ROLLUPS) {
    const keys = sql.join(keyColumns(r).map((k) => sql.ref(k)))
    const unit = sql.raw(`created_at / ${r.seconds}`)
    const grouped = r.scope === 'user' ? sql`user_id, ${unit}, type` : sql`${unit}, type`
    // Sums as numeric: a recomputation must not overflow where the rollup would not.
    const { rows: [diff] } = await sql<{ n: number }>`
      with expected as (
        select ${grouped}, count(*)::numeric as n, sum(quota)::numeric as quota, sum(prompt_tokens)::numeric as p, sum(completion_tokens)::numeric as c
        from logs group by ${grouped}
      ), got as (
        select ${keys}, n::numeric, quota::numeric, prompt_tokens::numeric as p, completion_tokens::numeric as c from ${sql.table(r.table)} where n <> 0
      )
      select count(*) as n from ((table expected except all table got) union all (table got except all table expected)) d`.execute(app.db)
    if (diff!.n !== 0) differ.push(`${r.table}: ${diff!.n} rows differ`)
  }
  return differ
}

export interface FuzzWorld {
  admin: TestUser
  root: TestUser
  user: TestUser
  disabled: TestUser
  apiKey: string
  disabledKey: string
  deletedKey: string
  /** ids of the rows seeded */
  logIds: number[]
}

/**
 * The valid purge's target is 1..2^53-1 (DELETE /api/log/ in the contract and its schema): rows
 * stamped at 2^53-1 are never below any target a purge accepts, so no fuzzed purge may delete one.
 */
export const SEED_CREATED_AT = Number.MAX_SAFE_INTEGER

/** Users of every kind, API keys in every state, one channel, and rows folded into the rollups. */
export async function seedWorld (app: App): Promise<FuzzWorld> {
  const db = app.db
  const admin = await createUser(db, { role: 10 })
  const root = await createUser(db, { role: 100 })
  const user = await createUser(db, { role: 1, group: 'vip' })
  const disabled = await createUser(db, { role: 10, status: 2 })
  const key = await createApiKey(db, user.id, { name: 'fuzz-key' })
  const disabledKey = await createApiKey(db, user.id, { status: 2 })
  const deletedKey = await createApiKey(db, user.id, { deleted: true })
  await db.insertInto('channels').values({ name: 'fuzz channel' }).execute()
  const owners = [admin, root, user, disabled]
  const logIds = await insertLogs(db, Array.from({ length: 40 }, (_, i) => ({
    user_id: owners[i % owners.length]!.id,
    created_at: SEED_CREATED_AT,
    type: i % 8,
    content: ['plain', '100% sure', 'a_b\\c', '模型 调用', "it's"][i % 5]!,
    username: owners[i % owners.length]!.username,
    token_name: i % 3 === 0 ? 'fuzz-key' : '',
    model_name: i % 2 === 0 ? 'gpt-4o' : 'claude',
    quota: i * 1000,
    prompt_tokens: i,
    completion_tokens: 2 * i,
    channel_id: i % 4 === 0 ? 1 : 0,
    token_id: i % 3 === 0 ? key.id : 0,
    group: i % 2 === 0 ? 'default' : 'vip',
    request_id: `req${i}`,
    other: '{"k":1}'
  })))
  // The triggers' deltas folded now: the fold is off in a fuzzed app, so nothing moves afterwards.
  while (await foldStatDeltas(app.maintenanceDb) > 0);
  return { admin, root, user, disabled, apiKey: key.key, disabledKey: disabledKey.key, deletedKey: deletedKey.key, logIds }
}

const CODES = new Set<string>(ERROR_CODES)

export interface Answer {
  statusCode: number
  headers: Record<string, unknown>
  body: string
}

/**
 * What is wrong with an answer, or undefined: never a 5xx; a 2xx only where the request may be
 * valid; below 2xx or at 3xx only as `allowRedirect` says; any 4xx is the envelope
 * `{ success: false, message, code }` with a code of ours (a HEAD answer has no body to check).
 */
export function answerProblem (res: Answer, opts: { method: string, mayBeValid: boolean, allowRedirect?: boolean }): string | undefined {
  const s = res.statusCode
  if (s >= 500) return `a ${s}: ${res.body.slice(0, 300)}`
  if (s < 200) return `a ${s}`
  if (s >= 300 && s < 400) return opts.allowRedirect === true ? undefined : `a redirect ${s}`
  if (s < 300) return opts.mayBeValid ? undefined : `a ${s} for a request that cannot be valid: ${res.body.slice(0, 200)}`
  if (opts.method === 'HEAD') return undefined
  if (!String(res.headers['content-type'] ?? '').startsWith('application/json')) return `a ${s} whose content-type is ${String(res.headers['content-type'])}: ${res.body.slice(0, 200)}`
  let body: unknown
  try {
    body = JSON.parse(res.body)
  } catch {
    return `a ${s} whose body is not JSON: ${res.body.slice(0, 200)}`
  }
  const b = body as { success?: unknown, message?: unknown, code?: unknown }
  if (b.success !== false || typeof b.message !== 'string' || b.message === '' || typeof b.code !== 'string') {
    return `a ${s} that is not the error envelope: ${res.body.slice(0, 300)}`
  }
  if (!CODES.has(b.code)) return `a ${s} with a code that is not ours: ${b.code}`
  return undefined
}
