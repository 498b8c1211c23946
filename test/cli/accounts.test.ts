// log-service user / token / channel / migrate, run in-process against a test database.
import { readdirSync } from 'node:fs'
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../../src/app.js'
import { migrationFolder } from '../../src/db/migrate.js'
import { cli, cliDatabase } from '../helpers/cli.js'
import { createTestDatabase, insertLogs, testConfig } from '../helpers/app.js'

t.test('user create → list → disable → enable → set-role', async (t) => {
  const { url, db } = await cliDatabase(t)
  const db_ = ['--database-url', url]

  const created = await cli(['user', 'create', 'alice', '--role', 'admin', '--group', 'vip', ...db_])
  t.equal(created.code, 0, 'exit code 0')
  const id = Number(/created user ([0-9]+) 'alice', role 10 \(admin\)/.exec(created.stdout)?.[1])
  const token = /access token \(shown this once only\): ([0-9a-f]+)\n/.exec(created.stdout)?.[1] ?? ''
  t.match(token, /^[0-9a-f]{32}$/, 'a 32-hex-character access token')
  t.equal(created.stdout.split(token).length - 1, 1, 'the token is printed once')
  t.match(await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst(),
    { username: 'alice', display_name: 'alice', role: 10, status: 1, group: 'vip', access_token: token })

  const bob = await cli(['user', 'create', 'bob', ...db_])
  t.equal(bob.code, 0)
  t.match(bob.stdout, /role 1 \(user\)/, 'role user by default')

  const list = await cli(['user', 'list', ...db_])
  t.equal(list.code, 0)
  t.match(list.stdout, /^ID +USERNAME +ROLE +STATUS +GROUP +TOKEN/)
  t.match(list.stdout, new RegExp(`\\n${id} +alice +10 \\(admin\\) +enabled +vip +set`))
  t.match(list.stdout, /bob +1 \(user\) +enabled/)
  t.notMatch(list.stdout, token, 'list never prints a token')

  const disabled = await cli(['user', 'disable', 'alice', ...db_])
  t.equal(disabled.code, 0)
  t.match(disabled.stdout, `disabled user ${id} 'alice'`)
  t.equal((await db.selectFrom('users').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status, 2)
  t.match((await cli(['user', 'list', ...db_])).stdout, /alice +10 \(admin\) +disabled/)

  const enabled = await cli(['user', 'enable', String(id), ...db_])
  t.equal(enabled.code, 0, 'by id as well as by name')
  t.equal((await db.selectFrom('users').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status, 1)

  for (const [role, number] of [['root', 100], ['1', 1], ['ADMIN', 10]] as const) {
    const r = await cli(['user', 'set-role', 'alice', role, ...db_])
    t.equal(r.code, 0, `set-role ${role}`)
    t.equal((await db.selectFrom('users').select('role').where('id', '=', id).executeTakeFirstOrThrow()).role, number)
  }
})

t.test('the access token of a created user authenticates on the service', async (t) => {
  const { url } = await cliDatabase(t)
  const app = await buildApp({ ...testConfig(), DATABASE_URL: url })
  t.teardown(() => app.close())
  const created = await cli(['user', 'create', 'carol', '--role', 'root', '--database-url', url])
  const id = /created user ([0-9]+)/.exec(created.stdout)?.[1] ?? ''
  const token = /access token[^:]*: (\S+)/.exec(created.stdout)?.[1] ?? ''
  const res = await app.inject({ url: '/api/log/', headers: { authorization: `Bearer ${token}`, 'new-api-user': id } })
  t.equal(res.statusCode, 200, 'an admin list with the new token')
})

t.test('token create / list / disable', async (t) => {
  const { url, db } = await cliDatabase(t)
  const app = await buildApp({ ...testConfig(), DATABASE_URL: url })
  t.teardown(() => app.close())
  const db_ = ['--database-url', url]
  await cli(['user', 'create', 'dave', ...db_])
  const userId = (await db.selectFrom('users').select('id').where('username', '=', 'dave').executeTakeFirstOrThrow()).id

  const created = await cli(['token', 'create', 'dave', '--name', 'ci', ...db_])
  t.equal(created.code, 0, 'exit code 0')
  const tokenId = Number(/created API key ([0-9]+) 'ci' for user ([0-9]+) 'dave'/.exec(created.stdout)?.[1])
  const key = /key \(shown this once only\): (sk-\S+)/.exec(created.stdout)?.[1] ?? ''
  t.match(key, /^sk-[A-Za-z0-9]{48}$/, "new-api's style: sk- and 48 letters and digits")
  t.equal(created.stdout.split(key).length - 1, 1, 'the key is printed once')
  t.match(await db.selectFrom('tokens').selectAll().where('id', '=', tokenId).executeTakeFirst(),
    { user_id: userId, key: key.slice(3), name: 'ci', status: 1, deleted_at: null }, 'stored without sk-')

  await insertLogs(app.db, [{ user_id: userId, created_at: 1_700_000_000, type: 2, token_id: tokenId, content: 'via the new key' }])
  const read = await app.inject({ url: '/api/log/token', query: { key } })
  t.equal(read.statusCode, 200, 'the new key reads its logs')
  t.match(read.json(), { success: true, data: [{ content: 'via the new key' }] })

  const other = await cli(['token', 'create', String(userId), ...db_])
  t.match(other.stdout, /'default' for user/, 'named default unless told')
  await db.updateTable('tokens').set({ deleted_at: new Date() }).where('name', '=', 'default').execute()

  const list = await cli(['token', 'list', ...db_])
  t.equal(list.code, 0)
  t.match(list.stdout, new RegExp(`\\n${tokenId} +${userId} dave +ci +enabled +sk-${key.slice(3, 7)}…\\n`))
  t.notMatch(list.stdout, key.slice(3, 12), 'never more than the first characters of a key')
  t.notMatch(list.stdout, /deleted/, 'deleted keys only with --all')
  t.match((await cli(['token', 'list', '--all', '--user', 'dave', ...db_])).stdout, / default +deleted /)

  const disabled = await cli(['token', 'disable', String(tokenId), ...db_])
  t.equal(disabled.code, 0)
  t.equal((await db.selectFrom('tokens').select('status').where('id', '=', tokenId).executeTakeFirstOrThrow()).status, 2)
  t.match((await cli(['token', 'list', ...db_])).stdout, / ci +disabled /)
  t.equal((await app.inject({ url: '/api/log/token', query: { key } })).statusCode, 401, 'a disabled key is refused')
})

t.test('channel set / list', async (t) => {
  const { url, db } = await cliDatabase(t)
  const db_ = ['--database-url', url]
  t.equal((await cli(['channel', 'set', '5', 'openai-east', ...db_])).code, 0)
  t.equal((await cli(['channel', 'set', '2', 'azure', ...db_])).code, 0)
  const renamed = await cli(['channel', 'set', '5', 'openai west', ...db_])
  t.equal(renamed.code, 0)
  t.equal(renamed.stdout, "channel 5 is 'openai west'\n")
  const list = await cli(['channel', 'list', ...db_])
  t.equal(list.stdout, 'ID  NAME\n2   azure\n5   openai west\n')
  // An insert without an id (as the gateway makes channels) must not collide with the ids set here.
  const next = await db.insertInto('channels').values({ name: 'later' }).returning('id').executeTakeFirstOrThrow()
  t.equal(next.id, 6)
})

t.test('migrate applies every migration to an empty database, once', async (t) => {
  const url = await createTestDatabase(t, { empty: true })

  const first = await cli(['migrate', '--database-url', url])
  t.equal(first.code, 0, 'exit code 0')
  const applied = first.stdout.trimEnd().split('\n')
  t.strictSame(applied, readdirSync(migrationFolder).filter((f) => f.endsWith('.ts')).sort().map((f) => `applied: ${f.replace(/\.ts$/, '')}`), 'each migration, in order')
  const second = await cli(['migrate', '--database-url', url])
  t.equal(second.stdout, 'database is up to date\n')
})

t.test('migrate --partitions converts the logs table once, and says each step with its time', async (t) => {
  const url = await createTestDatabase(t, { empty: true })

  const first = await cli(['migrate', '--database-url', url, '--partitions', 'day'])
  t.equal(first.code, 0, 'exit code 0')
  t.match(first.stdout, /\nlogs partitioned by day\n$/, 'stdout says it happened')
  t.match(first.stderr, /^partitioning logs by day: created \d+ day partitions and logs_default \(\d+\.\d s\)$/m, 'each step on stderr, with the time since the start')
  t.match(first.stderr, /^partitioning logs by day: done \(\d+\.\d s\)$/m)
  const db = new pg.Client({ connectionString: url })
  await db.connect()
  const { rows } = await db.query<{ kind: string }>('select relkind as kind from pg_class where oid = \'logs\'::regclass').finally(() => db.end())
  t.equal(rows[0]?.kind, 'p', 'logs is partitioned')
  const again = await cli(['migrate', '--database-url', url], { env: { LOG_PARTITIONS: 'month' } })
  t.strictSame([again.code, again.stdout, again.stderr], [0, 'database is up to date\n', ''], 'a partitioned table is left as it is')
  const bad = await cli(['migrate', '--database-url', url, '--partitions', 'year'])
  t.equal(bad.code, 2, 'a grain that is not day, month or off is a usage error')
})

t.test('migrate, and DATABASE_URL when there is no --database-url', async (t) => {
  const { url } = await cliDatabase(t)
  const r = await cli(['migrate'], { env: { DATABASE_URL: url } })
  t.equal(r.code, 0, 'exit code 0')
  t.equal(r.stdout, 'database is up to date\n')
  t.equal((await cli(['channel', 'set', '1', 'x'], { env: { DATABASE_URL: url } })).code, 0)
  const flagWins = await cli(['channel', 'list', '--database-url', url], { env: { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' } })
  t.equal(flagWins.code, 0, '--database-url wins over DATABASE_URL')
  t.match(flagWins.stdout, /1 +x/)
})

t.test('bad input: one message naming the problem, exit 2 for usage and 1 for failures', async (t) => {
  const { url, db } = await cliDatabase(t)
  const db_ = ['--database-url', url]
  await cli(['user', 'create', 'erin', ...db_])
  const cases: Array<[string[], number, RegExp]> = [
    [['user', 'set-role', 'erin', 'wizard', ...db_], 2, /invalid for argument 'role'\. unknown role: use user, admin or root/],
    [['user', 'set-role', 'erin', '5', ...db_], 2, /unknown role/],
    [['user', 'create', 'frank', '--role', 'boss', ...db_], 2, /option '--role <role>' argument 'boss' is invalid/],
    [['user', 'create', '1234', ...db_], 2, /only digits/],
    [['user', 'create', 'erin', ...db_], 1, /username 'erin' is taken/],
    [['user', 'disable', 'nobody', ...db_], 1, /no user 'nobody'/],
    [['user', 'enable', '99999', ...db_], 1, /no user '99999'/],
    [['token', 'create', 'nobody', ...db_], 1, /no user 'nobody'/],
    [['token', 'list', '--user', 'nobody', ...db_], 1, /no user 'nobody'/],
    [['token', 'disable', '424242', ...db_], 1, /no API key with id 424242/],
    [['token', 'disable', 'abc', ...db_], 2, /value 'abc' is invalid for argument 'id'\. not an integer/],
    [['channel', 'set', '0', 'x', ...db_], 2, /must be between 1 and/],
    [['channel', 'set', '3', ...db_], 2, /missing required argument 'name'/],
    [['user', 'list', '--colour', ...db_], 2, /unknown option '--colour'/],
    [['user', 'frobnicate'], 2, /unknown command 'frobnicate'/],
    [['user'], 2, /Usage: log-service user/],
    [['user', 'list', '--database-url', 'postgres://nobody@127.0.0.1:1/none'], 1, /ECONNREFUSED/],
    [['user', 'list'], 2, /bad configuration in the environment: .*PURGE_BATCH_SIZE/]
  ]
  for (const [argv, code, message] of cases) {
    const env = argv.length === 2 && argv[1] === 'list' ? { PURGE_BATCH_SIZE: 'lots' } : {}
    const r = await cli(argv, { env })
    // The label without the URL: it carries the test server's password.
    const label = argv.filter((a) => a !== url).join(' ')
    t.equal(r.code, code, label)
    t.match(r.stderr, message, label)
    t.notMatch(r.stderr, /\n +at /, 'no stack trace')
    t.equal(r.stdout, '', 'nothing on stdout')
  }
  t.equal((await db.selectFrom('users').select('id').execute()).length, 1, 'nothing was created by the failures')
})
