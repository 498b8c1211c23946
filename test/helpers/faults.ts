import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LightMyRequestResponse } from 'fastify'
import { sql, type Kysely, type RawBuilder } from 'kysely'
import pg from 'pg'
import type { Test } from 'tap'
import type { App } from '../../src/app.js'
import { EMBEDDED_SETTINGS, embeddedPostgresFlags, embeddedUrl, loadEmbeddedPostgres, prepareForPostgresUser } from '../../src/db/embedded.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { createDb, createPool } from '../../src/db/pool.js'
import type { Database } from '../../src/db/types.js'
import { freePort } from '../../src/lib/child-process.js'
import { DELTA_SECONDS, DELTA_TABLE, keyColumns, ROLLUPS, SUM_COLUMNS } from '../../src/queries/rollups/model.js'

// Database faults made on purpose (test/faults/): a PostgreSQL server the test owns and can stop,
// the failure envelope such faults must answer, and the checks that nothing was half written: rows
// kept as they were, rollups and stat answers equal to SQL over the rows that are left.

type Tap = { teardown: (fn: () => unknown) => void }
type Assert = Pick<Test, 'equal' | 'type' | 'not' | 'notMatch' | 'ok' | 'strictSame'>

// Driver and SQL text that must never reach a client.
const LEAK = /ECONNREFUSED|ECONNRESET|127\.0\.0\.1|postgres|select |from logs|relation|column|does not exist|terminat|timeout exceeded|statement|stack|\bat .*\.(?:js|ts)|node_modules|canceling|advisory/i

/** The 503 envelope of a database at fault: the route's message, LOG_DB_UNAVAILABLE, a retry hint, nothing that leaks the cause. */
export function assertUnavailable (t: Assert, res: LightMyRequestResponse, message: string, label: string): void {
  t.equal(res.statusCode, 503, `${label}: 503`)
  t.strictSame(res.json(), { success: false, message, code: 'LOG_DB_UNAVAILABLE' }, `${label}: the envelope`)
  t.equal(res.headers['retry-after'], '1', `${label}: Retry-After`)
  t.notMatch(res.body, LEAK, `${label}: no driver text, SQL or stack`)
}

/** Polls `done` every `ms` until it holds, at most `tries` times. */
export async function until (done: () => boolean | Promise<boolean>, tries = 500, ms = 20): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await done()) return true
    await sleep(ms)
  }
  return false
}

export interface OwnedPostgres {
  /** the URL of database `logs`, migrated */
  url: string
  /** a plain client on `logs`, ended with the test; errors (the server going away) are ignored */
  client: () => Promise<pg.Client>
  /** fast shutdown (SIGINT): sessions are ended, the postmaster exits */
  stop: () => Promise<void>
  start: () => Promise<void>
}

/**
 * A PostgreSQL server of the test's own (the embedded binaries, a temporary data folder, a free
 * port), with a migrated database `logs`. Stopped and removed when the test ends.
 */
export async function ownedPostgres (t: Tap): Promise<OwnedPostgres> {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-faults-'))
  // As root, PostgreSQL runs as the postgres user, which must reach the data directory inside.
  chmodSync(dir, 0o755)
  const port = await freePort()
  const databaseDir = prepareForPostgresUser({ dataDir: path.join(dir, 'data') })
  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    ...EMBEDDED_SETTINGS,
    persistent: true,
    // Throwaway data: durability buys nothing here and costs fsyncs.
    postgresFlags: embeddedPostgresFlags('fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'jit=off'),
    onLog: () => {},
    onError: () => {}
  })
  const clients: pg.Client[] = []
  t.teardown(async () => {
    for (const c of clients) await c.end().catch(() => {})
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await server.initialise()
  await server.start()

  const admin = new pg.Client({ connectionString: embeddedUrl(port, 'postgres') })
  await admin.connect()
  try {
    await admin.query('create database logs')
  } finally {
    await admin.end()
  }
  const url = embeddedUrl(port, 'logs')
  const setup = createDb(createPool({ connectionString: url, max: 1 }))
  try {
    await migrateToLatest(setup)
  } finally {
    await setup.destroy()
  }
  return {
    url,
    client: async () => {
      const c = new pg.Client({ connectionString: url })
      c.on('error', () => {})
      await c.connect()
      clients.push(c)
      return c
    },
    stop: () => server.stop(),
    start: () => server.start()
  }
}

/** Every row of logs, by id, as text: what "intact" is compared against. */
export async function rowsById (db: Kysely<Database>): Promise<Map<number, string>> {
  const { rows } = await sql<{ id: number, row: string }>`select id, to_jsonb(l)::text as row from logs l`.execute(db)
  return new Map(rows.map((r) => [Number(r.id), r.row]))
}

/**
 * After a purge toward `target` (finished or not): rows at or after it are all there, unchanged;
 * rows below it are either gone or unchanged. Returns how many rows below it are left.
 */
export async function assertRowsKept (t: Assert, db: Kysely<Database>, before: Map<number, string>, target: number, label: string): Promise<number> {
  const now = await rowsById(db)
  let keptBelow = 0
  let changed = 0
  let lostAbove = 0
  let appeared = 0
  for (const [id, row] of before) {
    const createdAt = Number((JSON.parse(row) as { created_at: number }).created_at)
    const after = now.get(id)
    if (after === undefined) {
      if (createdAt >= target) lostAbove++
      continue
    }
    if (after !== row) changed++
    if (createdAt < target) keptBelow++
  }
  for (const id of now.keys()) if (!before.has(id)) appeared++
  t.equal(lostAbove, 0, `${label}: no row at or after the target is gone`)
  t.equal(changed, 0, `${label}: no row that is left was changed`)
  t.equal(appeared, 0, `${label}: no row appeared`)
  return keptBelow
}

/** Rows of `table` equal to `expected` and `actual`, differences in both directions (a few shown). */
async function differences (db: Kysely<Database>, expected: RawBuilder<unknown>, actual: RawBuilder<unknown>) {
  const { rows } = await sql<{ side: string, row: string }>`
    with e as (${expected}), a as (${actual})
    select 'missing' as side, to_jsonb(x)::text as row from (select * from e except all select * from a) x
    union all
    select 'extra', to_jsonb(y)::text from (select * from a except all select * from e) y
    limit 5`.execute(db)
  return rows.map((r) => `${r.side} ${r.row}`)
}

/**
 * The purge run again after one that died: answered 200 (its lock went with the dead session)
 * with exactly the rows still below the target, none left there, every other row kept, rollups
 * exact. `before` and `below` are the rows and the count below the target before the first purge.
 */
export async function assertRerunFinishes (t: Assert, app: App, headers: Record<string, string>, before: Map<number, string>, below: number, target: number, left: number): Promise<void> {
  const again = await app.inject({ method: 'DELETE', url: '/api/log/', headers, query: { target_timestamp: String(target) } })
  t.equal(again.statusCode, 200, 'the re-run is not refused: the purge lock died with its session')
  t.strictSame(again.json(), { success: true, message: '', data: left }, 'it deletes what was left below the target')
  t.equal(await assertRowsKept(t, app.db, before, target, 'after the re-run'), 0, 'no row below the target is left')
  t.equal((await rowsById(app.db)).size, before.size - below, 'every row from the target on is there')
  await assertRollupsExact(t, app.db, 'after the re-run')
}

/**
 * Every rollup, with the deltas not folded yet, equals the sums of logs grouped by the rollup's
 * key (units whose sums are all zero aside: a purge leaves no rows there, the sums are the same).
 */
export async function assertRollupsExact (t: Assert, db: Kysely<Database>, label: string): Promise<void> {
  const sums = (prefix: string) => sql.join(SUM_COLUMNS.map((c) => sql`sum(${sql.ref(prefix + c)})::int8 as ${sql.ref(c)}`))
  for (const r of ROLLUPS) {
    const keys = keyColumns(r)
    const groupBy = sql.join(keys.map((_, i) => sql.lit(i + 1)))
    const fromLogs = sql.join(keys.map((k) => k === r.unit ? sql`created_at / ${sql.lit(r.seconds)} as ${sql.ref(k)}` : sql.ref(k)))
    const fromDeltas = sql.join(keys.map((k) => k === r.unit ? sql`minute / ${sql.lit(r.seconds / DELTA_SECONDS)} as ${sql.ref(k)}` : sql.ref(k)))
    const rollupCols = sql.join(keys.map((k) => sql.ref(k)))
    const logsSums = sql`select ${fromLogs}, count(*)::int8 as n, ${sql.join(SUM_COLUMNS.slice(1).map((c) => sql`sum(${sql.ref(c)})::int8 as ${sql.ref(c)}`))} from logs group by ${groupBy}`
    const stored = sql`
      select ${rollupCols}, ${sums('')} from (
        select ${rollupCols}, ${sql.join(SUM_COLUMNS.map((c) => sql.ref(c)))} from ${sql.table(r.table)}
        union all
        select ${fromDeltas}, ${sql.join(SUM_COLUMNS.map((c) => sql.ref(c)))} from ${sql.table(DELTA_TABLE)}
      ) s group by ${groupBy}
      having not (${sql.join(SUM_COLUMNS.map((c) => sql`sum(${sql.ref(c)}) = 0`), sql` and `)})`
    const diff = await differences(db, logsSums, stored)
    t.strictSame(diff, [], `${label}: ${r.table} and the pending deltas equal SQL over logs`)
  }
}

/** Rollup rows whose sums are all zero (units a purge emptied and left behind), per table. */
export async function zeroRollupRows (db: Kysely<Database>): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const r of ROLLUPS) {
    const { rows: [row] } = await sql<{ n: string }>`select count(*) as n from ${sql.table(r.table)} where n = 0 and quota = 0`.execute(db)
    out[r.table] = Number(row?.n)
  }
  return out
}

interface StatCaller { headers: Record<string, string>, id: number }

/**
 * /api/log/stat (and one user's /self/stat) over wide windows and ragged ones, every type and the
 * default, and the admin list's total: each equal to SQL over logs.
 */
export async function assertStatRoutesExact (t: Assert, app: App, admin: StatCaller, user: StatCaller, label: string): Promise<void> {
  const { rows: [span] } = await sql<{ lo: string | null, hi: string | null }>`select min(created_at) as lo, max(created_at) as hi from logs`.execute(app.db)
  const lo = Number(span?.lo ?? 1_700_000_000)
  const hi = Number(span?.hi ?? 1_700_000_000)
  const windows: Array<{ start?: number, end?: number }> = [
    {}, { start: 1, end: 4_000_000_000 }, { start: lo - 86_400 * 3, end: hi + 86_400 * 3 },
    { start: lo + 37, end: hi - 91 }, { start: lo + 3600 * 5 + 1, end: hi }
  ].filter((w) => w.start === undefined || w.end === undefined || w.start <= w.end)
  for (const w of windows) {
    for (const type of [undefined, 0, 1]) {
      const query: Record<string, string> = {}
      if (type !== undefined) query.type = String(type)
      if (w.start !== undefined) query.start_timestamp = String(w.start)
      if (w.end !== undefined) query.end_timestamp = String(w.end)
      const effectiveType = type ?? 2
      const where = (userId?: number) => sql.join([
        sql`true`,
        ...(effectiveType === 0 ? [] : [sql`type = ${effectiveType}`]),
        ...(w.start === undefined ? [] : [sql`created_at >= ${w.start}`]),
        ...(w.end === undefined ? [] : [sql`created_at <= ${w.end}`]),
        ...(userId === undefined ? [] : [sql`user_id = ${userId}`])
      ], sql` and `)
      const quota = async (userId?: number) => Number((await sql<{ q: string }>`select coalesce(sum(quota), 0) as q from logs where ${where(userId)}`.execute(app.db)).rows[0]?.q)
      const site = await app.inject({ url: '/api/log/stat', headers: admin.headers, query })
      t.equal(site.statusCode, 200, `${label}: stat ${JSON.stringify(query)} answers`)
      t.equal(site.json().data?.quota, await quota(), `${label}: stat ${JSON.stringify(query)} quota equals SQL`)
      const self = await app.inject({ url: '/api/log/self/stat', headers: user.headers, query })
      t.equal(self.json().data?.quota, await quota(user.id), `${label}: self stat ${JSON.stringify(query)} quota equals SQL`)
    }
  }
  // Lists without a filter but the type: their totals come from the rollups, exact at any size.
  for (const type of [0, 2]) {
    const { rows: [all] } = await sql<{ n: string }>`select count(*) as n from logs where ${type === 0 ? sql`true` : sql`type = ${type}`}`.execute(app.db)
    const list = await app.inject({ url: '/api/log/', headers: admin.headers, query: { type: String(type), page_size: '1' } })
    t.strictSame({ status: list.statusCode, total: list.json().data?.total, exact: list.json().data?.total_exact }, { status: 200, total: Number(all?.n), exact: true },
      `${label}: the type ${type} list's total equals count(*)`)
  }
}

/**
 * Waits (bounded) until at least `n` of the service's request connections wait on a lock that
 * `locker` holds; their backend pids. Blocked by this session in particular: a purge may also wait
 * a moment on the stat fold's locks.
 */
export async function blockedBy (observer: pg.Client, locker: pg.Client, n = 1): Promise<number[]> {
  const { rows: [me] } = await locker.query<{ pid: number }>('select pg_backend_pid() as pid')
  for (let i = 0; i < 1000; i++) {
    const { rows } = await observer.query<{ pid: number }>(
      `select pid from pg_stat_activity
        where datname = current_database() and application_name = 'log-service' and $1 = any(pg_blocking_pids(pid))`,
      [me?.pid]
    )
    if (rows.length >= n) return rows.map((r) => r.pid)
    await sleep(10)
  }
  throw new Error(`fewer than ${n} service connections ever waited on the lock`)
}

/**
 * Kysely on `url` over a one-connection pool of its own (with the service's type parsers), closed
 * with the test; named apart from the service's sessions, which tests count.
 */
export function dbOn (t: Tap, url: string): Kysely<Database> {
  const db = createDb(createPool({ connectionString: url, max: 1, applicationName: 'faults-test' }))
  t.teardown(() => db.destroy())
  return db
}
