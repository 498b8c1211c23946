// A purge killed at a random point (kill -9 of the service process that runs it), then run again:
// exactly the rows below the target are gone, every other row is intact, every stat is exact.
// The kill points are drawn from a seed printed in the output (FAULTS_SEED=<n> replays them).
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../../src/app.js'
import { startNodeChild } from '../../src/lib/child-process.js'
import { createTestDatabase, createUser, testConfig } from '../helpers/app.js'
import { assertRerunFinishes, assertRollupsExact, assertRowsKept, assertStatRoutesExact, dbOn, rowsById, until, zeroRollupRows } from '../helpers/faults.js'

const serverEntry = path.join(import.meta.dirname, '..', '..', 'src', 'server.ts')
const TOKEN = 'faults-kill-root-token-0001'
const DAY0 = 1_699_920_000 // a UTC midnight
const ROWS = 8000
const STEP = 43 // seconds between rows: four days
// Mid-hour in the fourth day.
const TARGET = DAY0 + 3 * 86_400 + 7 * 3600 + 1111

const seed = Number(process.env.FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31))
function prng (s: number) {
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const random = prng(seed)

// Row by row (many small transactions), whole hours (one statement each, repeatable read, under
// the rollup write lock taken at the session level), and the mix the defaults give.
const SHAPES = [
  { PURGE_BATCH_SIZE: '60', PURGE_UNIT_MAX_ROWS: '0' },
  { PURGE_BATCH_SIZE: '60', PURGE_UNIT_MAX_ROWS: '200' },
  { PURGE_BATCH_SIZE: '500', PURGE_UNIT_MAX_ROWS: '500000' }
]

async function count (client: pg.Client, statement: string, values: unknown[] = []): Promise<number> {
  return Number((await client.query<{ n: string }>(statement, values)).rows[0]?.n)
}

t.comment(`kill points from FAULTS_SEED=${seed}`)

/** The service as `npm start` runs it, on a database of its own, started ahead (a start costs seconds). */
async function startService (shape: Record<string, string>) {
  const url = await createTestDatabase(t)
  const child = startNodeChild(serverEntry, {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      DATABASE_URL: url,
      PORT: '0',
      ROOT_ACCESS_TOKEN: TOKEN,
      LOG_LEVEL: 'info',
      STAT_FOLD_INTERVAL_MS: '100',
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0',
      ...shape
    }
  })
  t.teardown(child.stop)
  await child.waitForOutput(/Server listening at (http:\/\/[^"\s]+)|Error/)
  return { url, child, address: /Server listening at (http:\/\/[^"\s]+)/.exec(child.output())?.[1] }
}

// Each service starts while the one before it is under test; started all at once, on two cores,
// they took longer than one after another.
const services: Array<ReturnType<typeof startService>> = []
function service (i: number) {
  if (services[i] === undefined && i < SHAPES.length) {
    services[i] = startService(SHAPES[i]!)
    // Awaited by its subtest; a failed start fails that subtest, not the file.
    services[i].catch(() => {})
  }
  return services[i]
}

for (const [i, shape] of SHAPES.entries()) {
  // The share of the rows below the target the purge has deleted when it is killed.
  const killAt = random() * 0.9
  t.test(`kill -9 after ~${Math.round(killAt * 100)} % of a purge (${JSON.stringify(shape)})`, { timeout: 60_000 }, async (t) => {
    const started = service(i)!
    service(i + 1)
    const { url, child, address } = await started
    if (!t.ok(address, 'the service listens')) {
      t.comment(child.output())
      return
    }
    const observer = new pg.Client({ connectionString: url })
    await observer.connect()
    t.teardown(() => observer.end())
    const rootId = await count(observer, "select id as n from users where username = 'root'")

    // Written while it runs: the fold has deltas to move while the purge goes on.
    await observer.query(`
      insert into logs (user_id, created_at, type, quota, prompt_tokens, completion_tokens, model_name)
      select 1 + i % 4, ${DAY0 + 30} + i * ${STEP}, (array[1, 2, 2, 5])[1 + i % 4], i % 997, i % 40, i % 25, 'm' || (i % 3)
      from generate_series(0, ${ROWS - 1}) i`)
    const db = dbOn(t, url)
    const before = await rowsById(db)
    const below = await count(observer, 'select count(*) as n from logs where created_at < $1', [TARGET])

    const purge = fetch(`${address}/api/log/?target_timestamp=${TARGET}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}`, 'new-api-user': String(rootId) } })
      .then((res) => res.status, () => 'no answer')
    let left = below
    for (let polls = 0; polls < 3000 && left > below * (1 - killAt); polls++) {
      await sleep(2)
      left = await count(observer, 'select count(*) as n from logs where created_at < $1', [TARGET])
    }
    process.kill(child.pid, 'SIGKILL')
    t.equal(await child.exited, null, 'the service died by the signal')
    t.comment(`killed with ${below - left} of ${below} rows deleted (or a few more)`)
    t.equal(await purge, 'no answer', 'the purge never answered')

    // The dead process's sessions end as PostgreSQL notices; their open transactions roll back.
    t.ok(await until(async () => await count(observer,
      "select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'log-service%'") === 0),
    'its sessions are gone')
    const kept = await assertRowsKept(t, db, before, TARGET, 'after the kill')
    t.ok(kept <= below, `${below - kept} rows below the target were deleted before the kill`)
    await assertRollupsExact(t, db, 'after the kill')

    // Run again, on a new instance of the service.
    const app = await buildApp({ ...testConfig({ STAT_FOLD_INTERVAL_MS: 100, PURGE_BATCH_SIZE: Number(shape.PURGE_BATCH_SIZE), PURGE_UNIT_MAX_ROWS: Number(shape.PURGE_UNIT_MAX_ROWS) }), DATABASE_URL: url })
    t.teardown(() => app.close())
    const admin = await createUser(app.db, { role: 100 })
    await assertRerunFinishes(t, app, admin.headers, before, below, TARGET, kept)
    t.ok(await until(async () => (await app.db.selectFrom('logs_stat_delta').select('n').execute()).length === 0), 'the fold moves what is pending')
    await assertRollupsExact(t, app.db, 'after the re-run, folded')
    const user = await createUser(app.db)
    t.ok(user.id <= 4, 'a user the rows belong to')
    await assertStatRoutesExact(t, app, admin, user, 'after the re-run')
    t.strictSame(await zeroRollupRows(app.db), { logs_stat_minutely: 0, logs_stat_hourly: 0, logs_stat_hourly_user: 0, logs_stat_daily_user: 0 }, 'no emptied units are left in the rollups')
  })
}
