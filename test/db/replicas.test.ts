// Read replicas (DATABASE_READ_URL) against a real primary and a real streaming replica: which
// server answered is told by data the paused replica has not replayed, or still has.
import t from 'tap'
import { sql } from 'kysely'
import pg from 'pg'
import { buildApp, loggerOptions, type App } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { createDb, createPool } from '../../src/db/pool.js'
import { lagOf, parseReadUrls } from '../../src/db/replicas.js'
import { Role, UserStatus } from '../../src/domain.js'
import { createApiKey, createUser, insertLogs, testConfig, type TestUser } from '../helpers/app.js'
import { caughtUp, startReplicaPair, until } from '../helpers/replica.js'
import { captureLogs, registerSecret } from '../helpers/secrets.js'

t.test('DATABASE_READ_URL: comma-separated, blanks ignored', async (t) => {
  t.strictSame(parseReadUrls(' postgres://a/x , ,postgres://b/x'), ['postgres://a/x', 'postgres://b/x'])
  t.strictSame(parseReadUrls(undefined), [])
  const config = loadConfig({})
  t.equal(config.READ_MAX_LAG_MS, 5000)
  t.equal(config.READ_LAG_CHECK_INTERVAL_MS, 1000)
  t.throws(() => loadConfig({ READ_MAX_LAG_MS: '-1' }), /READ_MAX_LAG_MS/)
})

t.test('the lag a probe reads', async (t) => {
  t.equal(lagOf({ recovery: true, caught_up: true, lag_ms: 60_000 }), 0, 'caught up: no lag, however old the last replayed commit')
  t.equal(lagOf({ recovery: true, caught_up: false, lag_ms: 1500 }), 1500, 'behind: the last replayed commit\'s age')
  t.equal(lagOf({ recovery: true, caught_up: null, lag_ms: 1500 }), 1500, 'primary not sampled: the same')
  t.equal(lagOf({ recovery: true, caught_up: false, lag_ms: -3 }), 0, 'clocks apart: never negative')
  t.equal(lagOf({ recovery: true, caught_up: false, lag_ms: null }), null, 'nothing replayed yet: unknown')
  t.equal(lagOf({ recovery: false, caught_up: true, lag_ms: 0 }), null, 'promoted: no replica')
  t.equal(lagOf(undefined), null, 'no answer')
})

t.test('a primary and a streaming replica', async (t) => {
  const pair = await startReplicaPair(t)
  const primaryPool = createPool({ connectionString: pair.primary.url, max: 2 })
  // pool.end() resolves once it has asked its connections to close: the primary may stop before
  // they have, and their 'error' then reaches the pool.
  primaryPool.on('error', () => {})
  const primaryDb = createDb(primaryPool)
  t.teardown(() => primaryDb.destroy())
  await migrateToLatest(primaryDb)
  const replica = new pg.Client({ connectionString: pair.replica.url })
  await replica.connect()
  // The replica is stopped under it at the end.
  replica.on('error', () => {})
  t.teardown(() => replica.end().catch(() => {}))

  // The password is ignored (trust on loopback); it is there to be looked for in the logs.
  const replicaUrl = pair.replica.url.replace('postgres@', 'postgres:replica-secret-0123456789@')
  registerSecret(replicaUrl)

  const admin = await createUser(primaryDb, { role: Role.admin })
  const user = await createUser(primaryDb)
  const victim = await createUser(primaryDb)
  const key = await createApiKey(primaryDb, user.id)
  const ANCIENT = 1000
  await insertLogs(primaryDb, [{ user_id: user.id, token_id: key.id, created_at: ANCIENT, type: 2, content: 'ancient', quota: 5 }])
  await caughtUp(pair)

  async function appWith (overrides: Partial<Config>, readUrl: string | null = replicaUrl): Promise<App> {
    const logs = captureLogs()
    const config = {
      // Probes only when a test asks (replicas.probe()), unless it says otherwise; no fold writing on the primary.
      ...testConfig({ STAT_FOLD_INTERVAL_MS: 0, READ_LAG_CHECK_INTERVAL_MS: 600_000, ...overrides }),
      DATABASE_URL: pair.primary.url,
      DATABASE_READ_URL: readUrl ?? undefined
    }
    const app = await buildApp(config, { logger: { ...loggerOptions('debug'), stream: logs.stream } })
    t.teardown(async () => {
      await app.close()
      const leaks = logs.leaks()
      if (leaks.length > 0) throw new Error(`secrets in the app's log lines:\n${leaks.join('\n')}`)
    })
    await app.replicas?.probe()
    return app
  }

  // Lag within the bound: the replica answers. Lag beyond it (0: only a caught-up replica): the primary.
  const lenient = await appWith({ READ_MAX_LAG_MS: 3_600_000 })
  const strict = await appWith({ READ_MAX_LAG_MS: 0 })
  // Its own probes, every 100 ms.
  const watcher = await appWith({ READ_MAX_LAG_MS: 3_600_000, READ_LAG_CHECK_INTERVAL_MS: 100 })

  const adminGet = async (app: App, url: string, query: Record<string, string> = {}) => await app.inject({ url, query, headers: admin.headers })
  const userGet = async (app: App, url: string, as: TestUser = user, query: Record<string, string> = {}) => await app.inject({ url, query, headers: as.headers })

  /** The content of every row each read route answers, and the stats' recent counts, as the app reads them. */
  async function reads (app: App) {
    const contents = (res: { statusCode: number, json: () => unknown }, pick: (body: any) => Array<{ content: string }>) => {
      if (res.statusCode !== 200) return [`status ${res.statusCode}`]
      return pick(res.json()).map((row) => row.content).sort()
    }
    const exported = await adminGet(app, '/api/log/export', { format: 'ndjson' })
    return {
      list: contents(await adminGet(app, '/api/log/'), (b) => b.data.items),
      self: contents(await userGet(app, '/api/log/self'), (b) => b.data.items),
      search: contents(await adminGet(app, '/api/log/search', { keyword: 'fresh' }), (b) => b.data),
      selfSearch: contents(await userGet(app, '/api/log/self/search', user, { keyword: 'ancient' }), (b) => b.data),
      token: contents(await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${key.key}` } }), (b) => b.data),
      export: exported.statusCode !== 200 ? [`status ${exported.statusCode}`] : exported.body.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { content: string }).content).sort(),
      statRpm: (await adminGet(app, '/api/log/stat')).json().data.rpm as number,
      selfStatQuota: (await userGet(app, '/api/log/self/stat', user, { type: '2' })).json().data.quota as number
    }
  }

  /** Probes until the replica is seen caught up: an idle primary still writes a little now and then (standby snapshots). */
  async function settle (app: App) {
    for (let i = 0; i < 100 && app.replicas!.status()[0]?.lagMs !== 0; i++) await app.replicas!.probe()
  }

  async function metrics (app: App) {
    const res = await app.inject({ url: '/metrics' })
    const value = (series: string) => {
      const line = res.body.split('\n').find((l) => l.startsWith(`${series} `))
      return line === undefined ? undefined : Number(line.slice(series.length + 1))
    }
    return {
      up: value('log_service_replica_up{replica="0"}'),
      lag: value('log_service_replica_lag_seconds{replica="0"}'),
      reads: value('log_service_replica_reads_total{replica="0"}'),
      conflicts: value('log_service_replica_conflicts_total{replica="0"}'),
      fallbacks: value('log_service_read_fallbacks_total'),
      replicaPool: value('log_service_db_pool_max{pool="replica-0"}')
    }
  }

  t.test('without DATABASE_READ_URL every read is the primary\'s', async (t) => {
    const plain = await appWith({}, null)
    t.equal(plain.readDb, plain.db)
    t.equal(plain.readPool, plain.pool)
    t.equal(plain.replicas, null)
    t.equal((await metrics(plain)).up, undefined, 'no replica metrics')
    t.strictSame((await reads(plain)).list, ['ancient'])
  })

  t.test('a replica that answers and is caught up serves the reads', async (t) => {
    await settle(strict)
    const before = await metrics(strict)
    t.strictSame(await reads(strict), {
      list: ['ancient'], self: ['ancient'], search: [], selfSearch: ['ancient'], token: ['ancient'], export: ['ancient'], statRpm: 0, selfStatQuota: 5
    })
    const after = await metrics(strict)
    t.equal(after.up, 1)
    t.equal(after.lag, 0, 'caught up: no lag, however old its last replayed commit')
    t.ok(after.reads! > before.reads!, `the replica served them (${before.reads} → ${after.reads} reads)`)
    t.equal(after.fallbacks, before.fallbacks, 'none went to the primary')
    t.equal(after.replicaPool, 4, 'the replica pool has its gauges')
  })

  t.test('while the replica replays nothing', async (t) => {
    t.equal((await userGet(lenient, '/api/log/self', victim)).statusCode, 200, 'the victim may read, to begin with')
    await replica.query('select pg_wal_replay_pause()')
    await until(pair.replica.url, "select pg_get_wal_replay_pause_state() = 'paused' as ok", 'replay is paused')

    // Writes go to the primary: an ingested row, a purge of the ancient one.
    const ingested = await lenient.inject({
      method: 'POST', url: '/api/log/', headers: admin.headers, payload: [{ user_id: user.id, token_id: key.id, type: 2, content: 'fresh', quota: 7 }]
    })
    t.equal(ingested.statusCode, 200)
    const purged = await lenient.inject({ method: 'DELETE', url: '/api/log/', headers: admin.headers, query: { target_timestamp: String(ANCIENT + 1) } })
    t.match(purged.json(), { success: true, data: 1 }, 'the purge deleted the ancient row')
    const onPrimary = await primaryDb.selectFrom('logs').select('content').orderBy('id').execute()
    t.strictSame(onPrimary.map((r) => r.content), ['fresh'], 'the primary has the writes')
    const { rows: onReplica } = await replica.query<{ content: string }>('select content from logs order by id')
    t.strictSame(onReplica.map((r) => r.content), ['ancient'], 'the replica has not replayed them')
    // A key and a user change the replica does not know of.
    const newKey = await createApiKey(primaryDb, user.id)
    await primaryDb.updateTable('users').set({ status: UserStatus.disabled }).where('id', '=', victim.id).execute()

    await Promise.all([lenient.replicas!.probe(), strict.replicas!.probe()])

    t.test('within READ_MAX_LAG_MS the replica answers', async (t) => {
      const before = await metrics(lenient)
      t.strictSame(await reads(lenient), {
        list: ['ancient'], self: ['ancient'], search: [], selfSearch: ['ancient'], token: ['ancient'], export: ['ancient'], statRpm: 0, selfStatQuota: 5
      })
      const newKeyRes = await lenient.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${newKey.key}` } })
      t.equal(newKeyRes.statusCode, 401, 'the key is looked up on the replica, which does not have it yet')
      const after = await metrics(lenient)
      t.ok(after.lag! > 0, `the lag is measured (${after.lag} s)`)
      t.equal(after.up, 1)
      t.equal(after.fallbacks, before.fallbacks, 'no read went to the primary')
    })

    t.test('beyond it the primary answers', async (t) => {
      const before = await metrics(strict)
      t.strictSame(await reads(strict), {
        list: ['fresh'], self: ['fresh'], search: ['fresh'], selfSearch: [], token: ['fresh'], export: ['fresh'], statRpm: 1, selfStatQuota: 7
      })
      const newKeyRes = await strict.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${newKey.key}` } })
      t.equal(newKeyRes.statusCode, 200, 'the new key is found on the primary')
      const after = await metrics(strict)
      t.ok(after.lag! > 0, `the lag is over the bound (${after.lag} s)`)
      t.ok(after.fallbacks! > before.fallbacks!, `the reads are counted as fallbacks (${before.fallbacks} → ${after.fallbacks})`)
      t.equal(after.reads, before.reads, 'the replica served none')
    })

    t.test('a disabled user is refused at once: auth reads users on the primary', async (t) => {
      const res = await userGet(lenient, '/api/log/self', victim)
      t.equal(res.statusCode, 403)
      t.match(res.json(), { success: false, message: /disabled/ })
    })
  })

  t.test('once replay resumes and catches up, the replica answers again', async (t) => {
    await replica.query('select pg_wal_replay_resume()')
    await caughtUp(pair)
    await settle(strict)
    const before = await metrics(strict)
    t.equal(before.lag, 0)
    t.strictSame((await reads(strict)).list, ['fresh'])
    const after = await metrics(strict)
    t.ok(after.reads! > before.reads!, 'the replica served it')
    t.equal(after.fallbacks, before.fallbacks, 'the primary did not')
  })

  t.test('a replica connection lost under a statement: the statement runs again on the primary', async (t) => {
    // A lock on logs that the replica replays: the replica's read of logs waits behind it.
    const locker = new pg.Client({ connectionString: pair.primary.url })
    await locker.connect()
    t.teardown(() => locker.end())
    await locker.query('begin')
    await locker.query('lock table logs in access exclusive mode')
    // Another commit flushes the WAL that holds the lock, and so sends it to the replica.
    await sql`select pg_current_xact_id()`.execute(primaryDb)
    await until(pair.replica.url, "select exists (select 1 from pg_locks where relation = 'logs'::regclass and mode = 'AccessExclusiveLock') as ok", 'the replica holds the lock')

    const before = await metrics(lenient)
    const answer = lenient.inject({ url: '/api/log/token', headers: { authorization: `Bearer ${key.key}` } })
    await until(pair.replica.url, "select exists (select 1 from pg_stat_activity where application_name = 'log-service-replica-0' and wait_event_type = 'Lock') as ok", 'the read waits on the replica')
    await replica.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'log-service-replica-0' and wait_event_type = 'Lock'")
    // The statement, run again on the primary, waits for the lock there: released, it answers.
    await until(pair.primary.url, "select exists (select 1 from pg_stat_activity where application_name = 'log-service' and wait_event_type = 'Lock') as ok", 'the read waits on the primary')
    await locker.query('rollback')
    const res = await answer
    t.equal(res.statusCode, 200, 'no 5xx')
    t.strictSame(res.json().data.map((r: { content: string }) => r.content), ['fresh'])
    const after = await metrics(lenient)
    t.equal(after.up, 0, 'the replica is taken out until a probe finds it again')
    t.ok(after.fallbacks! > before.fallbacks!, 'the statement is counted as a fallback')
    await lenient.replicas!.probe()
    t.equal((await metrics(lenient)).up, 1, 'the next probe brings it back')
  })

  t.test('a statement the replica cancels for a conflict with replay runs again on the primary; the replica stays in', async (t) => {
    // A deadlock with replay, made on purpose: the replica replays a lock on channels; the admin
    // page (logs, then channels) takes logs and waits for channels; the replica then replays a
    // lock on logs, which waits for the page. The replica cancels the page's statement (SQLSTATE
    // 40P01 after deadlock_timeout, or 40001 after max_standby_streaming_delay).
    const lockers = await Promise.all([0, 1].map(async () => {
      const c = new pg.Client({ connectionString: pair.primary.url })
      await c.connect()
      t.teardown(() => c.end())
      return c
    }))
    const [onChannels, onLogs] = lockers as [pg.Client, pg.Client]
    const replayed = async (table: string) => {
      await sql`select pg_current_xact_id()`.execute(primaryDb)
      await until(pair.replica.url, `select exists (select 1 from pg_locks where relation = '${table}'::regclass and mode = 'AccessExclusiveLock') as ok`, `the replica holds the lock on ${table}`)
    }
    await onChannels.query('begin')
    await onChannels.query('lock table channels in access exclusive mode')
    await replayed('channels')

    const before = await metrics(lenient)
    const answer = adminGet(lenient, '/api/log/')
    await until(pair.replica.url, "select exists (select 1 from pg_stat_activity where application_name = 'log-service-replica-0' and wait_event_type = 'Lock') as ok", 'the page waits on the replica')
    await onLogs.query('begin')
    await onLogs.query('lock table logs in access exclusive mode')
    // Another commit flushes the WAL that holds the lock, and so sends it to the replica (else it
    // waits there, unsent, for the next background flush: up to the 15 s of a standby snapshot).
    await sql`select pg_current_xact_id()`.execute(primaryDb)
    // On the primary, the page run again waits behind both locks: released, it answers (an answer
    // before that is the cancelled statement's).
    await Promise.race([
      until(pair.primary.url, "select exists (select 1 from pg_stat_activity where application_name = 'log-service' and wait_event_type = 'Lock') as ok", 'the page waits on the primary', 60_000).catch(() => {}),
      answer
    ])
    await onLogs.query('rollback')
    await onChannels.query('rollback')
    const res = await answer
    t.equal(res.statusCode, 200, `no 5xx: ${res.body.slice(0, 200)}`)
    t.strictSame(res.json().data.items.map((r: { content: string }) => r.content), ['fresh'])
    const after = await metrics(lenient)
    t.equal(after.up, 1, 'the replica is not taken out: nothing is wrong with it')
    t.equal(after.conflicts, (before.conflicts ?? 0) + 1, 'the conflict is counted')
    t.ok(after.fallbacks! > before.fallbacks!, 'the statement is counted as a fallback')
  })

  t.test('a dead replica: the primary answers, never a 5xx', async (t) => {
    await pair.replica.stop()
    await insertLogs(primaryDb, [{ user_id: user.id, token_id: key.id, created_at: Math.floor(Date.now() / 1000), type: 2, content: 'late', quota: 1 }])
    // The lenient app has not probed since: its first reads find the replica gone as they check a connection out.
    const { statRpm, ...readsNow } = await reads(lenient)
    t.strictSame(readsNow, {
      list: ['fresh', 'late'], self: ['fresh', 'late'], search: ['fresh'], selfSearch: [], token: ['fresh', 'late'], export: ['fresh', 'late'], selfStatQuota: 8
    })
    t.ok(statRpm >= 1, 'the stat counts the row written a moment ago')
    const m = await metrics(lenient)
    t.equal(m.up, 0)
    t.equal(m.lag, -1, 'no lag known')
    await lenient.replicas!.probe()
    t.equal((await metrics(lenient)).up, 0, 'the probe finds it down too')
    // The watcher, which serves no reads here, learns it from its own periodic probes.
    for (let i = 0; i < 200 && (await metrics(watcher)).up !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    t.equal((await metrics(watcher)).up, 0, 'the periodic probe marks it down')
    t.equal((await adminGet(watcher, '/api/log/')).statusCode, 200)
  })
})
