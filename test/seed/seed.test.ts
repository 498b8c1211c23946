import t from 'tap'
import type pg from 'pg'
import { createPool } from '../../src/db/pool.js'
import { LogType } from '../../src/domain.js'
import { escapeCopyText } from '../../src/db/copy-text.js'
import type { Dimensions } from '../../src/seed/dimensions.js'
import { rebuildIndexes } from '../../src/seed/indexes.js'
import { createLogChunks, LOG_COPY_COLUMNS } from '../../src/seed/log-rows.js'
import { resolveSeedOptions, seedDatabase, type SeedOptions, type SeedPhase } from '../../src/seed/seed.js'
import { groupList, modelList, tokenName } from '../../src/seed/vocabulary.js'
import { createTestDatabase } from '../helpers/app.js'

const END = 1_795_835_014
const SMALL = { rows: 3000, users: 20, tokensPerUser: 3, channels: 6, models: 8, days: 7, end: END }
const START = END - 7 * 86_400

type Tap = { teardown: (fn: () => unknown) => void }

async function freshPool (t: Tap): Promise<pg.Pool> {
  const url = await createTestDatabase(t)
  const pool = createPool({ connectionString: url, max: 3, statementTimeoutMs: 0 })
  // the database is dropped with (force) at teardown, which ends idle connections
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  return pool
}

async function one<T> (pool: pg.Pool, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await pool.query(sql, params)
  return rows[0] as T
}

async function count (pool: pg.Pool, sql: string, params: unknown[] = []): Promise<number> {
  return Number((await one<{ n: string | number }>(pool, `select count(*) as n from ${sql}`, params)).n)
}

/** md5 over every row of the four tables, in id order */
async function contentHash (pool: pg.Pool): Promise<Record<string, string>> {
  const hashes: Record<string, string> = {}
  for (const table of ['logs', 'users', 'tokens', 'channels']) {
    hashes[table] = (await one<{ h: string }>(pool, `select md5(coalesce(string_agg(x::text, E'\\n' order by x.id), '')) as h from ${table} x`)).h
  }
  return hashes
}

async function indexDefinitions (pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ d: string }>(`
    select pg_get_indexdef(x.indexrelid) || case when x.indisvalid then '' else ' INVALID' end as d
      from pg_index x join pg_class c on c.oid = x.indrelid
     where c.relname in ('logs', 'users', 'tokens', 'channels') and c.relnamespace = 'public'::regnamespace
     order by 1`)
  return rows.map((r) => r.d)
}

t.test('a fresh seed', async (t) => {
  const pool = await freshPool(t)
  const phases: SeedPhase[] = []
  let lastProgress = [0, 0]
  const summary = await seedDatabase(pool, SMALL, {
    phase: (p) => { phases.push(p) },
    progress: (done, total) => { lastProgress = [done, total] }
  })

  t.match(summary, { rows: 3000, firstId: 1, lastId: 3000, start: START, end: END, indexesRebuilt: 0 })
  t.equal(summary.indexSeconds, undefined)
  t.ok(summary.totalBytes > 0 && summary.tableBytes > 0 && summary.indexBytes > 0)
  t.strictSame(phases, ['dimensions', 'copy', 'rollups', 'analyze'])
  t.strictSame(lastProgress, [3000, 3000])

  t.test('exactly the rows asked for, ids 1..N', async (t) => {
    t.match(await one(pool, 'select count(*)::int as n, min(id) as lo, max(id) as hi from logs'), { n: 3000, lo: 1, hi: 3000 })
  })

  t.test('ids follow created_at, inside the window', async (t) => {
    t.equal(await count(pool, '(select created_at < lag(created_at) over (order by id) as back from logs) s where back'), 0)
    t.equal(await count(pool, 'logs where created_at < $1 or created_at >= $2', [START, END]), 0)
    const span = await one<{ lo: number, hi: number }>(pool, 'select min(created_at) as lo, max(created_at) as hi from logs')
    t.ok(span.lo < START + 3600 && span.hi > END - 3600, 'spread over the whole window')
  })

  t.test('type mix', async (t) => {
    const { rows } = await pool.query<{ type: number, n: number }>('select type, count(*)::int as n from logs group by type')
    const by = (type: number) => rows.find((r) => r.type === type)?.n ?? 0
    t.ok(by(LogType.consume) > 2550 && by(LogType.consume) < 2850, `consume ${by(LogType.consume)}`)
    for (const type of [LogType.topUp, LogType.error]) t.ok(by(type) > 40 && by(type) < 160, `type ${type}: ${by(type)}`)
    for (const type of [LogType.manage, LogType.system]) t.ok(by(type) > 20 && by(type) < 120, `type ${type}: ${by(type)}`)
  })

  t.test('types as the contract numbers them', async (t) => {
    t.ok(await count(pool, 'logs where content like \'status_code=%\''), 'there are error rows')
    t.equal(await count(pool, 'logs where content like \'status_code=%\' and type <> $1', [LogType.error]), 0, 'error rows are type 4')
    t.ok(await count(pool, 'logs where content like \'用户注册%\''), 'there are sign-up rows')
    t.equal(await count(pool, 'logs where (content like \'用户注册%\' or content like \'new user registered%\') and type <> $1', [LogType.system]), 0, 'system rows are type 5')
  })

  t.test('users, tokens and channels', async (t) => {
    t.equal(await count(pool, 'users where role = 1'), 20)
    t.equal(await count(pool, 'users where role = 100 and username = \'root\' and length(access_token) = 32'), 1, 'and a root to sign in with')
    t.equal(await count(pool, 'tokens'), 60)
    t.equal(await count(pool, 'channels'), 6)
    t.equal(await count(pool, 'users where role = 1 and username <> \'user\' || id'), 0)
    t.equal(await count(pool, 'users where "group" not in (\'default\', \'vip\', \'svip\', \'enterprise\', \'free\') or length(access_token) <> 32'), 0)
    t.equal(await count(pool, 'tokens where key !~ \'^[A-Za-z0-9]{48}$\''), 0)
    t.equal(await count(pool, 'tokens t join users u on u.id = t.user_id'), 60)
    t.ok(await count(pool, 'users where id = 1 and exists (select 1 from tokens where user_id = 1 and name = \'prod-1\')'))
  })

  t.test('every reference holds', async (t) => {
    t.equal(await count(pool, 'logs l left join users u on u.id = l.user_id where u.id is null or u.username <> l.username or u."group" <> l."group"'), 0)
    // consume and error rows: the row's user owns the token; a model, a channel and a request id
    t.equal(await count(pool, `logs l left join tokens k on k.id = l.token_id
      where l.type in ($1, $2) and (k.id is null or k.user_id <> l.user_id or k.name <> l.token_name)`, [LogType.consume, LogType.error]), 0)
    t.equal(await count(pool, `logs l where l.type in ($1, $2) and (l.model_name = '' or length(l.request_id) <> 39
      or not exists (select 1 from channels c where c.id = l.channel_id))`, [LogType.consume, LogType.error]), 0)
    t.equal(await count(pool, `logs where type in ($1, $2, $3) and (token_id <> 0 or token_name <> '' or model_name <> ''
      or channel_id <> 0 or request_id <> '' or other <> '')`, [LogType.topUp, LogType.manage, LogType.system]), 0)
    t.equal(await count(pool, '(select request_id from logs where type in ($1, $2) group by request_id having count(*) > 1) d',
      [LogType.consume, LogType.error]), 0, 'request ids are unique')
  })

  t.test('text looks like new-api', async (t) => {
    t.ok(await count(pool, 'logs where type = $1 and content like \'model ratio %, completion ratio %, cache ratio 0.10, group ratio %\'', [LogType.consume]))
    t.ok(await count(pool, 'logs where type = $1 and content like \'模型倍率 %，补全倍率 %\'', [LogType.consume]))
    t.equal(await count(pool, 'logs where type in ($1, $2) and (other::jsonb -> \'admin_info\' -> \'use_channel\' ->> 0)::int <> channel_id', [LogType.consume, LogType.error]), 0)
    t.equal(await count(pool, 'logs where type = $1 and (other::jsonb ->> \'model_ratio\') is null', [LogType.consume]), 0)
    const req = await one<{ n: number, distinct: number }>(pool, `
      select count(*)::int as n, count(distinct substring(content from 'req_[0-9a-f]{16}'))::int as distinct
        from logs where content like '%(request id: req\\_%'`)
    t.ok(req.n > 0)
    t.equal(req.distinct, req.n, 'each rate-limit error has its own req_ id')
    t.equal(await count(pool, 'logs where quota < 0 or prompt_tokens not between 0 and 8000 or completion_tokens not between 0 and 8000'), 0)
  })

  t.test('rollups written in time order, as a live service appends them', async (t) => {
    for (const [table, unit] of [['logs_stat_minutely', 'minute'], ['logs_stat_hourly_user', 'hour'], ['logs_stat_daily_user', 'day']]) {
      const rows = await one<{ n: number, back: number }>(pool, `select count(*)::int as n, count(*) filter (where back)::int as back
        from (select ${unit} < lag(${unit}) over (order by ctid) as back from ${table}) s`)
      t.ok(rows.n > 1, `${table} has rows`)
      t.equal(rows.back, 0, `${table}: no row on a later page than a row of a later ${unit}`)
    }
  })

  t.test('analyzed', async (t) => {
    t.ok((await one<{ n: number }>(pool, 'select reltuples as n from pg_class where relname = \'logs\'')).n > 0)
  })
})

t.test('the same seed gives the same rows, another seed other rows', async (t) => {
  const [a, b, c] = await Promise.all([freshPool(t), freshPool(t), freshPool(t)])
  await Promise.all([
    seedDatabase(a, { ...SMALL, seed: 7 }),
    seedDatabase(b, { ...SMALL, seed: 7 }),
    seedDatabase(c, { ...SMALL, seed: 8 })
  ])
  const [ha, hb, hc] = await Promise.all([contentHash(a), contentHash(b), contentHash(c)])
  t.strictSame(ha, hb)
  t.not(ha.logs, hc.logs)
  t.not(ha.users, hc.users)
})

t.test('--drop-indexes leaves the same indexes, and the same rows', async (t) => {
  const [plain, dropped] = await Promise.all([freshPool(t), freshPool(t)])
  const before = await indexDefinitions(dropped)
  const built: string[] = []
  const phases: SeedPhase[] = []
  const [, summary] = await Promise.all([
    seedDatabase(plain, SMALL),
    seedDatabase(dropped, { ...SMALL, dropIndexes: true }, {
      phase: (p) => { phases.push(p) },
      indexBuilt: (name) => { built.push(name) }
    })
  ])
  const after = await indexDefinitions(dropped)
  t.strictSame(after, before)
  t.ok(before.some((d) => d.includes('logs_pkey')))
  t.equal(summary.indexesRebuilt, before.filter((d) => / ON (ONLY )?public\.logs /.test(d) && !d.includes('logs_pkey')).length)
  t.equal(built.length, summary.indexesRebuilt)
  t.ok(summary.indexSeconds !== undefined && summary.indexSeconds >= 0)
  t.strictSame(phases, ['dimensions', 'drop-indexes', 'copy', 'rollups', 'indexes', 'analyze'])
  t.strictSame(await contentHash(dropped), await contentHash(plain))
})

t.test('a failed index build names what is missing', async (t) => {
  const pool = await freshPool(t)
  await t.rejects(rebuildIndexes(pool, [{ name: 'nope', qualifiedName: 'nope', definition: 'CREATE INDEX nope ON public.no_such_table (x)' }]),
    /1 index\(es\) could not be rebuilt[^]*CREATE INDEX nope ON public\.no_such_table/)
})

t.test('--append adds rows after the existing ones', async (t) => {
  const pool = await freshPool(t)
  await seedDatabase(pool, SMALL)
  const before = await contentHash(pool)
  // a row the gateway writes meanwhile takes the next id
  t.equal((await one<{ id: number }>(pool, 'insert into logs (user_id, created_at, type) values (1, $1, 2) returning id', [END])).id, 3001)

  const summary = await seedDatabase(pool, { ...SMALL, rows: 500, end: END + 3600, days: 1, append: true })
  t.match(summary, { rows: 500, firstId: 3002, lastId: 3501 })
  t.equal(await count(pool, 'logs'), 3501)
  t.equal(await count(pool, 'logs where id > 3001 and created_at >= $1', [END + 3600 - 86_400]), 500)
  t.equal(await count(pool, '(select created_at < lag(created_at) over (order by id) as back from logs where id > 3001) s where back'), 0)
  const after = await contentHash(pool)
  t.equal(after.users, before.users, 'users kept')
  t.equal(after.tokens, before.tokens, 'tokens kept')
  t.equal(await count(pool, 'logs l join tokens k on k.id = l.token_id where l.id > 3001 and k.user_id <> l.user_id'), 0)
  t.equal((await one<{ id: number }>(pool, 'insert into logs (user_id, created_at, type) values (1, $1, 2) returning id', [END])).id, 3502, 'the sequence moved past the load')
  // the load bypassed the stat triggers: the rollups must still match the rows exactly
  const rollup = await one<{ n: number, quota: number }>(pool, `select sum(n)::float8 as n, sum(quota)::float8 as quota from (
    select n, quota from logs_stat_hourly union all select n, quota from logs_stat_delta) s`)
  const rows = await one<{ n: number, quota: number }>(pool, 'select count(*)::float8 as n, sum(quota)::float8 as quota from logs')
  t.strictSame(rollup, rows, 'rollups and deltas add up to the rows')
  const perUser = await count(pool, `(select user_id, type, created_at / 86400 as day, count(*) as n from logs group by 1, 2, 3
    except select user_id, type, day, sum(n) from (select user_id, type, day, n from logs_stat_daily_user
      union all select user_id, type, minute / 1440, n from logs_stat_delta) u group by 1, 2, 3) d`)
  t.equal(perUser, 0, 'every (user, day, type) count matches')
  // the same seed again starts a different stream, so the appended rows are new rows
  t.equal(await count(pool, 'logs a join logs b on a.request_id = b.request_id and a.id < b.id where a.request_id <> \'\''), 0)
})

t.test('--append on an empty database says what to do', async (t) => {
  const pool = await freshPool(t)
  await t.rejects(seedDatabase(pool, { ...SMALL, append: true }), /seed once without --append/)
  t.equal(await count(pool, 'logs'), 0)
})

t.test('names with tabs, newlines and backslashes survive COPY', async (t) => {
  t.equal(escapeCopyText('plain'), 'plain')
  t.equal(escapeCopyText('a\tb\nc\\d\re'), 'a\\tb\\nc\\\\d\\re')

  const pool = await freshPool(t)
  await seedDatabase(pool, SMALL)
  const odd = 'we\\ird\tname\nhere 名字'
  await pool.query('update users set username = $1 where id = 1', [odd])
  await pool.query('update tokens set name = $1 where user_id = 1', ['key\\with\ttab'])
  await seedDatabase(pool, { ...SMALL, rows: 300, append: true })
  t.ok(await count(pool, 'logs where id > 3000 and username = $1', [odd]) > 0)
  t.ok(await count(pool, 'logs where id > 3000 and token_name = $1', ['key\\with\ttab']) > 0)
  t.equal(await count(pool, 'logs l join users u on u.id = l.user_id where l.id > 3000 and u.username <> l.username'), 0)
})

t.test('the generator', async (t) => {
  const dims: Dimensions = {
    users: [{ id: 1, username: 'a', group: 'vip' }, { id: 2, username: 'b', group: 'custom' }],
    tokens: [{ id: 10, userId: 1, name: 'k' }],
    channelIds: [5]
  }
  const opts = { rows: 2000, firstId: 1, start: 1000, end: 2000, models: 25, skew: 1, seed: 1 }
  const read = (chunkBytes: number) => {
    const chunks = createLogChunks(dims, opts, chunkBytes)
    const out: Buffer[] = []
    for (let c = chunks.next(); c !== undefined; c = chunks.next()) out.push(c)
    return { out, done: chunks.rowsDone() }
  }

  t.test('is a pure function of its inputs, chunked at whole rows', async (t) => {
    const small = read(4096)
    t.equal(small.done, 2000)
    t.ok(small.out.length > 10)
    for (const chunk of small.out) t.equal(chunk.at(-1), 10, 'ends with a newline')
    const text = Buffer.concat(small.out).toString('utf8')
    t.equal(text, Buffer.concat(read(1 << 20).out).toString('utf8'))
    const lines = text.split('\n').slice(0, -1)
    t.equal(lines.length, 2000)
    t.ok(lines.every((l) => l.split('\t').length === LOG_COPY_COLUMNS.length))
    // a user without tokens writes token 0; unknown groups and models past the named 20 work too
    t.ok(lines.some((l) => l.includes('\t2\tb\tcustom\t') && l.endsWith('\t0\t')))
    t.ok(text.includes('model-2'))
  })

  t.test('numbers the types as the contract does', async (t) => {
    const typeAt = LOG_COPY_COLUMNS.indexOf('type')
    const contentAt = LOG_COPY_COLUMNS.indexOf('content')
    const kinds = new Map<string, Set<number>>()
    for (const line of Buffer.concat(read(1 << 20).out).toString('utf8').split('\n').slice(0, -1)) {
      const fields = line.split('\t')
      const content = fields[contentAt]!
      const kind = /^(status_code=|用户注册|new user registered|通过兑换码充值|Recharged|管理员|model ratio|模型倍率)/.exec(content)?.[1] ?? content
      const types = kinds.get(kind) ?? new Set()
      types.add(Number(fields[typeAt]))
      kinds.set(kind, types)
    }
    const expected: Record<string, number> = {
      'status_code=': LogType.error,
      用户注册: LogType.system,
      'new user registered': LogType.system,
      通过兑换码充值: LogType.topUp,
      Recharged: LogType.topUp,
      管理员: LogType.manage,
      'model ratio': LogType.consume,
      模型倍率: LogType.consume
    }
    t.strictSame([...kinds.keys()].sort(), Object.keys(expected).sort(), 'every kind of row, and no other')
    for (const [kind, type] of Object.entries(expected)) t.strictSame([...kinds.get(kind) ?? []], [type], kind)
  })

  t.test('refuses what it cannot generate', async (t) => {
    t.throws(() => createLogChunks({ ...dims, users: [] }, opts), /no users/)
    t.throws(() => createLogChunks({ ...dims, channelIds: [] }, opts), /no channels/)
    t.throws(() => createLogChunks(dims, { ...opts, end: opts.start }), /window is empty/)
  })
})

t.test('vocabulary beyond the named entries', async (t) => {
  t.equal(modelList(22).at(-1)?.name, 'model-22')
  t.strictSame(groupList(7).map((g) => g.name), ['default', 'vip', 'svip', 'enterprise', 'free', 'group-6', 'group-7'])
  t.equal(tokenName(6, 3), 'key7-3')
})

t.test('options are checked', async (t) => {
  const bad: Array<Partial<SeedOptions> & { rows: number }> = [
    { rows: 0 }, { rows: 1.5 }, { rows: 10, users: 0 }, { rows: 10, skew: 0 }, { rows: 10, seed: 0.5 },
    { rows: 10, end: 5 }, { rows: 10, maintenanceWorkMem: '1 gigabyte' }
  ]
  for (const input of bad) t.throws(() => resolveSeedOptions(input), RangeError, JSON.stringify(input))
  t.match(resolveSeedOptions({ rows: 10 }), { rows: 10, days: 30, users: 2000, tokensPerUser: 5, skew: 2.5, seed: 42 })
})
