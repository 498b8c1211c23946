import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createPool } from '../src/db/pool.js'
import type { Database } from '../src/db/types.js'
import { startNodeChild, type NodeChild } from '../src/lib/child-process.js'
import { DELTA_TABLE } from '../src/queries/rollups/model.js'
import { buildTestApp, createApiKey, createTestDatabase, createUser } from './helpers/app.js'

// Several service processes on one database: the token route's rate limit shared through Redis,
// auth caches that let a disabled user go everywhere within 5 s, one purge at a time, exact stats
// with every process folding, and WORKERS=2 as one process with two workers. CI runs Redis on
// 127.0.0.1:6379: without it the Redis parts fail, they are not skipped.

const serverEntry = path.join(import.meta.dirname, '..', 'src', 'server.ts')
const REDIS_URL = 'redis://127.0.0.1:6379'
const ROOT_TOKEN = `instances-root-${randomBytes(12).toString('hex')}`
const INGEST_KEY = `instances-ingest-${randomBytes(16).toString('hex')}`
const TOKEN_RATE_LIMIT_MAX = 4
const LISTENING = /Server listening at (http:\/\/[^"\s]+)/

interface Service { child: NodeChild, url: string }

/** `npm start`'s command with only the given environment, once it listens (fails the test if it never does). */
async function startService (t: Test, env: Record<string, string>): Promise<Service> {
  const child = startNodeChild(serverEntry, {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      ROOT_ACCESS_TOKEN: ROOT_TOKEN,
      INGEST_KEY,
      DB_POOL_MAX: '4',
      // A test machine is busy by design: no load shedding, no failed-auth limit (as testConfig).
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
      AUTH_FAILURE_LIMIT: '0',
      ...env
    }
  })
  t.teardown(child.stop)
  await child.waitForOutput(LISTENING)
  const url = LISTENING.exec(child.output())?.[1]
  if (url === undefined) throw new Error(`the service did not start:\n${child.output()}`)
  return { child, url }
}

/** A Redis client for the test, or a failure: CI has Redis, so its absence is an error. */
async function connectRedis (t: Test): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis is not reachable at ${REDIS_URL} (CI runs one there): ${err instanceof Error ? err.message : String(err)}`)
  })
  t.teardown(() => { redis.disconnect() })
  return redis
}

async function redisKeys (redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    keys.push(...found)
  } while (cursor !== '0')
  return keys
}

function testDb (t: Test, url: string): Kysely<Database> {
  const pool = createPool({ connectionString: url, max: 2 })
  // The database is dropped (WITH FORCE) when the test ends, maybe before this pool closes.
  pool.on('error', () => {})
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  t.teardown(() => db.destroy())
  return db
}

interface Answer { status: number, body: any, pid?: number }

/** One request on a connection of its own (fetch would keep one alive, and stay on one worker). */
async function call (url: string, opts: { method?: string, headers?: Record<string, string>, body?: unknown } = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body)
    const req = httpRequest(url, {
      method: opts.method ?? 'GET',
      agent: false,
      headers: { ...opts.headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const rootHeaders = (rootId: number) => ({ authorization: `Bearer ${ROOT_TOKEN}`, 'new-api-user': String(rootId) })

async function sqlTotals (db: Kysely<Database>, type = 2): Promise<{ n: number, quota: number }> {
  const row = await db.selectFrom('logs')
    .select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.sum<string | null>('quota').as('quota')])
    .where('type', '=', type)
    .executeTakeFirstOrThrow()
  return { n: Number(row.n), quota: Number(row.quota ?? 0) }
}

/** Stat quota and the list's total, as one process answers them (type 2, no window). */
async function apiTotals (service: Service, rootId: number): Promise<{ n: number, quota: number }> {
  const stat = await call(`${service.url}/api/log/stat?type=2`, { headers: rootHeaders(rootId) })
  const list = await call(`${service.url}/api/log/?type=2&p=1&page_size=1`, { headers: rootHeaders(rootId) })
  if (stat.status !== 200 || list.status !== 200) throw new Error(`stat ${stat.status}, list ${list.status}: ${JSON.stringify([stat.body, list.body])}`)
  return { n: list.body.data.total, quota: stat.body.data.quota }
}

async function foldedBy (service: Service): Promise<number> {
  const res = await call(`${service.url}/metrics`)
  const m = /stat_fold_deltas_folded_total(?:\{[^}]*\})? ([0-9.e+]+)/.exec(String(res.body))
  return m === null ? -1 : Number(m[1])
}

t.test('two processes on one database, sharing Redis', async (t) => {
  const redis = await connectRedis(t)
  t.equal(await redis.ping(), 'PONG', 'Redis answers')
  const prefix = `log-service-test:${randomUUID()}:`
  t.teardown(async () => {
    const keys = await redisKeys(redis, `${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
  })
  const url = await createTestDatabase(t)
  const db = testDb(t, url)
  const env = {
    DATABASE_URL: url,
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    // What is tested is the sharing: on a loaded machine a 250 ms command timeout let a request
    // through uncounted (the fallback, by design; test/routes/auth-failures.test.ts covers it).
    REDIS_COMMAND_TIMEOUT_MS: '5000',
    STAT_FOLD_INTERVAL_MS: '50',
    AUTH_CACHE_TTL_MS: '5000',
    TOKEN_RATE_LIMIT_MAX: String(TOKEN_RATE_LIMIT_MAX)
  }
  // Started together: both migrate (nothing to do on the cloned template) and race to create root.
  const [a, b] = await Promise.all([startService(t, env), startService(t, env)])
  t.not(a.url, b.url, 'two processes, two ports')
  const roots = await db.selectFrom('users').select('id').where('username', '=', 'root').execute()
  t.equal(roots.length, 1, 'one root user, though both started on an empty users table')
  const rootId = roots[0]!.id
  const both = [a, b]

  t.test('the token route\'s limit is one count across both processes', async (t) => {
    const user = await createUser(db)
    const { key } = await createApiKey(db, user.id)
    const headers = { authorization: `Bearer ${key}` }
    const statuses: number[] = []
    for (let i = 0; i < TOKEN_RATE_LIMIT_MAX; i++) statuses.push((await call(`${both[i % 2]!.url}/api/log/token`, { headers })).status)
    t.strictSame(statuses, Array(TOKEN_RATE_LIMIT_MAX).fill(200), `${TOKEN_RATE_LIMIT_MAX} requests over both processes pass`)
    // Each process saw only half of them: counted alone, each would let the next ones through.
    for (const [name, service] of [['first', a], ['second', b]] as const) {
      const over = await call(`${service.url}/api/log/token`, { headers })
      t.equal(over.status, 429, `the next one is refused by the ${name} process`)
      t.match(over.body, { success: false, code: 'LOG_RATE_LIMITED' }, 'in the envelope')
    }
    const keys = await redisKeys(redis, `${prefix}rate-limit:*`)
    t.equal(keys.length, 1, 'the count is kept in Redis, under the deployment\'s prefix')
    t.equal(Number(await redis.get(keys[0]!)), TOKEN_RATE_LIMIT_MAX + 2, 'every request of both processes counted')
  })

  t.test('a disabled user is refused by both processes within 5 s, their caches notwithstanding', async (t) => {
    const user = await createUser(db)
    for (const service of both) {
      t.equal((await call(`${service.url}/api/log/self`, { headers: user.headers })).status, 200, 'enabled: served (and cached for 5 s)')
    }
    await db.updateTable('users').set({ status: 2 }).where('id', '=', user.id).execute()
    const refused = new Map<Service, Answer>()
    const deadline = Date.now() + 6000
    while (refused.size < both.length && Date.now() < deadline) {
      for (const service of both) {
        if (refused.has(service)) continue
        const res = await call(`${service.url}/api/log/self`, { headers: user.headers })
        if (res.status !== 200) refused.set(service, res)
      }
      await sleep(200)
    }
    for (const [name, service] of [['first', a], ['second', b]] as const) {
      t.match(refused.get(service), { status: 403, body: { success: false, message: /disabled/ } }, `the ${name} process refuses it within 6 s`)
    }
  })

  t.test('two purges at once on the two processes: one runs, the other is told one is running; rows and stats stay exact', async (t) => {
    // Three days of rows, one every 90 s, a day and a half of them below the target.
    const T = 1_700_006_400
    const target = T + 86_400 + 43_200
    await sql`insert into logs (user_id, created_at, type, quota) select ${rootId}, ${T} + i * 90, 2, i % 7 from generate_series(0, 2879) i`.execute(db)
    const below = Number((await db.selectFrom('logs').select((eb) => eb.fn.countAll<string>().as('n')).where('created_at', '<', target).executeTakeFirstOrThrow()).n)
    t.equal(below, 1440)

    // Held by the test: the oldest row, so that whichever purge takes the lock waits in its first
    // batch while the other one asks.
    const holder = new pg.Client({ connectionString: url })
    holder.on('error', () => {})
    await holder.connect()
    t.teardown(() => holder.end().catch(() => {}))
    await holder.query('begin')
    await holder.query('select id from logs where created_at = $1 for update', [T])

    const purges = both.map(async (service, i) => ({ i, res: await call(`${service.url}/api/log/?target_timestamp=${target}`, { method: 'DELETE', headers: rootHeaders(rootId) }) }))
    const first = await Promise.race(purges)
    t.match(first.res, { status: 409, body: { success: false, code: 'LOG_PURGE_RUNNING' } }, 'the second purge is answered at once: one is running')
    await holder.query('commit')
    const second = await purges[1 - first.i]!
    t.match(second.res, { status: 200, body: { success: true, data: below } }, 'the other purge deleted every row below the target')

    const left = await db.selectFrom('logs').select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.min('created_at').as('min')]).executeTakeFirstOrThrow()
    t.strictSame({ n: Number(left.n), min: Number(left.min) }, { n: 2880 - below, min: target }, 'exactly the rows below the target are gone')
    const expected = await sqlTotals(db)
    for (const service of both) t.strictSame(await apiTotals(service, rootId), expected, 'stat and list totals equal SQL\'s')
  })

  t.test('both processes fold while rows are written through both: the totals stay SQL\'s', async (t) => {
    const now = Math.floor(Date.now() / 1000)
    const batch = (round: number, j: number) => Array.from({ length: 100 }, (_, k) => ({
      user_id: rootId, type: 2, created_at: now - 7200 - round * 600 - j * 100 - k, quota: (round * 7 + j * 3 + k) % 11
    }))
    const ingestHeaders = { authorization: `Bearer ${INGEST_KEY}` }
    let written = 0
    // Rounds until each process has folded some deltas (a fold that finds the lock taken folds
    // nothing), at most 20.
    for (let round = 0; round < 20; round++) {
      const answers = await Promise.all([0, 1, 2, 3].map(async (j) => await call(`${both[j % 2]!.url}/api/log/`, { method: 'POST', headers: ingestHeaders, body: batch(round, j) })))
      for (const res of answers) if (res.status === 200) written += res.body.data
      if (round >= 2 && (await foldedBy(a)) > 0 && (await foldedBy(b)) > 0) break
    }
    t.ok(written >= 1200, `rows written through both processes (${written})`)
    t.ok(await foldedBy(a) > 0, 'the first process folded deltas')
    t.ok(await foldedBy(b) > 0, 'the second process folded deltas')

    const expected = await sqlTotals(db)
    for (const service of both) t.strictSame(await apiTotals(service, rootId), expected, 'while both fold: SQL\'s totals')
    let pending = -1
    for (let i = 0; i < 100 && pending !== 0; i++) {
      pending = Number((await db.selectFrom(DELTA_TABLE).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n)
      if (pending !== 0) await sleep(100)
    }
    t.equal(pending, 0, 'every delta folded')
    for (const service of both) t.strictSame(await apiTotals(service, rootId), expected, 'from the rollups alone: SQL\'s totals')
  })
})

t.test('WORKERS=2: one service, two worker processes on one port; one that dies is replaced; SIGTERM ends all with 0', async (t) => {
  const url = await createTestDatabase(t)
  const db = testDb(t, url)
  const service = await startService(t, { DATABASE_URL: url, WORKERS: '2', STAT_FOLD_INTERVAL_MS: '200' })
  const workerLines = /"worker":([0-9]+),"msg":"worker listening"/g
  const workersListening = async (n: number) => {
    for (let i = 0; i < 300 && [...service.child.output().matchAll(workerLines)].length < n; i++) await sleep(100)
    return [...service.child.output().matchAll(workerLines)].map((m) => Number(m[1]))
  }
  const workers = await workersListening(2)
  t.equal(new Set(workers).size, 2, 'two workers listen')
  for (const pid of workers) t.equal(parentOf(pid), service.child.pid, `worker ${pid} is a child of the service's process`)
  const rootId = (await db.selectFrom('users').select('id').where('username', '=', 'root').executeTakeFirstOrThrow()).id

  const servedBy = async (count: number) => {
    const statuses: number[] = []
    const before = service.child.output().length
    for (let i = 0; i < count; i++) statuses.push((await call(`${service.url}/api/log/self`, { headers: rootHeaders(rootId) })).status)
    // Each worker logs the requests it answered, with its pid.
    const pids = [...service.child.output().slice(before).matchAll(/"pid":([0-9]+)[^\n]*"msg":"request completed"/g)].map((m) => Number(m[1]))
    return { statuses, pids: new Set(pids) }
  }
  const first = await servedBy(20)
  t.strictSame(first.statuses, Array(20).fill(200), '20 requests, all answered')
  t.strictSame([...first.pids].sort(), [...workers].sort(), 'by both workers')

  process.kill(workers[0]!, 'SIGKILL')
  const after = await workersListening(3)
  t.equal(after.length, 3, 'a killed worker is replaced')
  t.match(service.child.output(), /"signal":"SIGKILL","msg":"worker died: starting another"/, 'and its death is logged')
  const replaced = [workers[1]!, after[2]!]
  const second = await servedBy(10)
  t.strictSame(second.statuses, Array(10).fill(200), 'the service answers on')
  t.strictSame([...second.pids].sort(), [...replaced].sort(), 'from the surviving worker and the new one')

  t.equal(await service.child.stop(), 0, 'SIGTERM: exit code 0')
  t.match(service.child.output(), /"msg":"shutting down: stopping the workers"[\s\S]*"msg":"workers stopped"/, 'the primary waited for its workers')
  for (const pid of replaced) {
    t.match(service.child.output(), new RegExp(`"pid":${pid},[^\\n]*"msg":"requests drained, database connections closed"`), `worker ${pid} drained`)
    t.equal(alive(pid), false, `worker ${pid} is gone`)
  }
})

t.test('Redis unreachable: the token route is not rate limited rather than failing', async (t) => {
  const app = await buildTestApp(t, { REDIS_URL: 'redis://127.0.0.1:1', REDIS_KEY_PREFIX: `log-service-test:${randomUUID()}:`, TOKEN_RATE_LIMIT_MAX: 1 })
  const user = await createUser(app.db)
  const { key } = await createApiKey(app.db, user.id)
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${key}` } })).statusCode)
  t.strictSame(statuses, [200, 200, 200], 'past the limit of 1, every request is answered')
})

/** The parent pid of a process, from /proc. */
function parentOf (pid: number): number {
  // /proc/<pid>/stat: "pid (comm) state ppid ...", and comm may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
