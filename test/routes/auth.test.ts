import { execFile } from 'node:child_process'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { withoutChildCoverage } from '../../src/lib/child-process.js'
import { buildTestApp, createApiKey, createTestDatabase, createUser, insertLogs, testConfig, type TestUser } from '../helpers/app.js'

type Route = { method: 'GET' | 'DELETE', url: string }

const userRoutes: Route[] = [
  { method: 'GET', url: '/api/log/self' },
  { method: 'GET', url: '/api/log/self/stat' },
  { method: 'GET', url: '/api/log/self/search?keyword=x' }
]

const adminRoutes: Route[] = [
  { method: 'GET', url: '/api/log/' },
  { method: 'GET', url: '/api/log' },
  { method: 'GET', url: '/api/log/stat' },
  { method: 'GET', url: '/api/log/search?keyword=x' },
  // target_timestamp=1 deletes nothing here: every row inserted below is newer.
  { method: 'DELETE', url: '/api/log/?target_timestamp=1' }
]

const allRoutes = [...userRoutes, ...adminRoutes]

const label = (route: Route) => `${route.method} ${route.url}`

/** The failure envelope: success false, a message, nothing else but an optional code. */
function assertFailure (t: Assert, body: unknown, message?: RegExp | string) {
  t.match(body, { success: false, message: message ?? /\S/ })
  t.notOk(body !== null && typeof body === 'object' && 'data' in body, 'no data in a failure')
}

type Assert = Pick<typeof t, 'match' | 'notOk'>

/** Repeats `probe` until it answers `want` or `boundMs` passes; returns the last answer. */
async function pollStatus (probe: () => Promise<number>, want: number, boundMs = 5000): Promise<number> {
  const deadline = Date.now() + boundMs
  let status = await probe()
  while (status !== want && Date.now() < deadline) {
    await sleep(50)
    status = await probe()
  }
  return status
}

t.test('user and admin routes', async (t) => {
  const app = await buildTestApp(t)
  const user = await createUser(app.db, { role: 1 })
  const admin = await createUser(app.db, { role: 10 })
  const root = await createUser(app.db, { role: 100 })
  const other = await createUser(app.db, { role: 1 })
  await insertLogs(app.db, [{ user_id: user.id, created_at: 1_700_000_000, type: 2, content: 'x' }])

  const call = (route: Route, headers: Record<string, string>) => app.inject({ method: route.method, url: route.url, headers })

  t.test('without Authorization: 401 in the envelope', async (t) => {
    for (const route of allRoutes) {
      const res = await call(route, { 'new-api-user': String(user.id) })
      t.equal(res.statusCode, 401, label(route))
      assertFailure(t, res.json())
    }
  })

  t.test('an empty Authorization header or a bare "Bearer" is no credential: 401', async (t) => {
    for (const authorization of ['', 'Bearer', 'Bearer   ']) {
      const res = await call(userRoutes[0]!, { authorization, 'new-api-user': String(user.id) })
      t.equal(res.statusCode, 401, JSON.stringify(authorization))
      assertFailure(t, res.json())
    }
  })

  t.test('an unknown access token: 401', async (t) => {
    for (const route of allRoutes) {
      const res = await call(route, { authorization: 'Bearer 0123456789abcdef0123456789abcdef', 'new-api-user': String(admin.id) })
      t.equal(res.statusCode, 401, label(route))
      assertFailure(t, res.json())
    }
  })

  t.test('an over-long access token is a 401, not a server error', async (t) => {
    const res = await call(userRoutes[0]!, { authorization: `Bearer ${'a'.repeat(5000)}`, 'new-api-user': String(user.id) })
    t.equal(res.statusCode, 401)
    assertFailure(t, res.json())
  })

  t.test('a user token with another user\'s id: 401', async (t) => {
    const res = await call(userRoutes[0]!, { authorization: `Bearer ${user.token}`, 'new-api-user': String(other.id) })
    t.equal(res.statusCode, 401)
    assertFailure(t, res.json())
  })

  t.test('Bearer, bearer and a bare token are all accepted', async (t) => {
    for (const authorization of [`Bearer ${user.token}`, `bearer ${user.token}`, `BEARER ${user.token}`, user.token]) {
      const res = await call(userRoutes[0]!, { authorization, 'new-api-user': String(user.id) })
      t.equal(res.statusCode, 200, authorization.replace(user.token, '<token>'))
      t.match(res.json(), { success: true, message: '', data: { total: 1 } })
    }
    for (const authorization of [`Bearer ${admin.token}`, `bearer ${admin.token}`, admin.token]) {
      const res = await call(adminRoutes[0]!, { authorization, 'new-api-user': String(admin.id) })
      t.equal(res.statusCode, 200, authorization.replace(admin.token, '<token>'))
    }
  })

  t.test('New-Api-User missing: 401', async (t) => {
    for (const route of allRoutes) {
      const res = await call(route, { authorization: admin.headers.authorization })
      t.equal(res.statusCode, 401, label(route))
      assertFailure(t, res.json(), /New-Api-User/)
    }
    const empty = await call(userRoutes[0]!, { authorization: user.headers.authorization, 'new-api-user': '' })
    t.equal(empty.statusCode, 401, 'empty value')
    assertFailure(t, empty.json())
  })

  t.test('New-Api-User malformed: 401', async (t) => {
    for (const value of ['abc', '1.5', '-1', `${user.id}x`, `${user.id} ${user.id}`, 'Bearer', 'Bearer abc', `Token ${user.id}`, '0x1']) {
      const res = await call(userRoutes[0]!, { authorization: user.headers.authorization, 'new-api-user': value })
      t.equal(res.statusCode, 401, JSON.stringify(value))
      assertFailure(t, res.json())
    }
  })

  t.test('New-Api-User not matching the token: 401', async (t) => {
    for (const route of allRoutes) {
      const res = await call(route, { authorization: admin.headers.authorization, 'new-api-user': String(root.id) })
      t.equal(res.statusCode, 401, label(route))
      assertFailure(t, res.json(), /New-Api-User/)
    }
    const unknownId = await call(userRoutes[0]!, { authorization: user.headers.authorization, 'new-api-user': String(user.id + 100_000) })
    t.equal(unknownId.statusCode, 401, 'an id nobody has')
  })

  t.test('New-Api-User as <id> and as Bearer <id>', async (t) => {
    for (const value of [String(user.id), `Bearer ${user.id}`, `bearer ${user.id}`, ` ${user.id} `]) {
      const res = await call(userRoutes[0]!, { authorization: user.headers.authorization, 'new-api-user': value })
      t.equal(res.statusCode, 200, JSON.stringify(value))
    }
    const res = await call(adminRoutes[0]!, { authorization: admin.headers.authorization, 'new-api-user': `Bearer ${admin.id}` })
    t.equal(res.statusCode, 200, 'admin route with Bearer <id>')
  })

  t.test('role 1 on admin routes: 403', async (t) => {
    for (const route of adminRoutes) {
      const res = await call(route, user.headers)
      t.equal(res.statusCode, 403, label(route))
      assertFailure(t, res.json())
      t.notMatch(res.json().message, /disabled/i, 'the role message, not the disabled one')
    }
  })

  t.test('role 1 reaches the user routes', async (t) => {
    for (const route of userRoutes) {
      const res = await call(route, user.headers)
      t.equal(res.statusCode, 200, label(route))
      t.match(res.json(), { success: true, message: '' })
    }
  })

  t.test('admin (10) and root (100) pass every route', async (t) => {
    for (const who of [admin, root]) {
      for (const route of allRoutes) {
        const res = await call(route, who.headers)
        t.equal(res.statusCode, 200, `${label(route)} as ${who.id}`)
        t.match(res.json(), { success: true, message: '' })
      }
    }
  })

  t.test('a refused purge deletes nothing', async (t) => {
    const [id] = await insertLogs(app.db, [{ user_id: user.id, created_at: 100, type: 3, content: 'old' }])
    const res = await app.inject({ method: 'DELETE', url: '/api/log/?target_timestamp=1000', headers: user.headers })
    t.equal(res.statusCode, 403)
    const row = await app.db.selectFrom('logs').select('id').where('id', '=', id!).executeTakeFirst()
    t.ok(row, 'the old row is still there')
  })
})

t.test('disabled users', async (t) => {
  const app = await buildTestApp(t)
  const user = await createUser(app.db, { role: 1, status: 2 })
  const admin = await createUser(app.db, { role: 10, status: 2 })
  const root = await createUser(app.db, { role: 100, status: 2 })

  t.test('are refused with 403 on every route, whatever their role', async (t) => {
    for (const who of [user, admin, root]) {
      for (const route of allRoutes) {
        const res = await app.inject({ method: route.method, url: route.url, headers: who.headers })
        t.equal(res.statusCode, 403, `${label(route)} as role ${who === user ? 1 : who === admin ? 10 : 100}`)
        assertFailure(t, res.json(), /disabled/i)
      }
    }
  })

  t.test('the status is checked before the role', async (t) => {
    for (const route of adminRoutes) {
      const res = await app.inject({ method: route.method, url: route.url, headers: user.headers })
      t.equal(res.statusCode, 403, label(route))
      assertFailure(t, res.json(), /disabled/i)
    }
  })

  t.test('credentials are checked before the status', async (t) => {
    const cases: Array<[string, Record<string, string>]> = [
      ['no Authorization', { 'new-api-user': String(user.id) }],
      ['no New-Api-User', { authorization: user.headers.authorization }],
      ['malformed New-Api-User', { authorization: user.headers.authorization, 'new-api-user': 'me' }],
      ['New-Api-User of another user', { authorization: user.headers.authorization, 'new-api-user': String(admin.id) }],
      ['unknown token with the disabled user\'s id', { authorization: 'Bearer nope-nope-nope', 'new-api-user': String(user.id) }]
    ]
    for (const [name, headers] of cases) {
      for (const route of [userRoutes[0]!, adminRoutes[0]!]) {
        const res = await app.inject({ method: route.method, url: route.url, headers })
        t.equal(res.statusCode, 401, `${name}: ${label(route)}`)
        assertFailure(t, res.json())
      }
    }
  })

  t.test('credentials are checked before the role', async (t) => {
    const enabled = await createUser(app.db, { role: 1 })
    const res = await app.inject({ url: '/api/log/', headers: { authorization: enabled.headers.authorization, 'new-api-user': String(root.id) } })
    t.equal(res.statusCode, 401)
    assertFailure(t, res.json())
  })
})

t.test('status and role changes take effect without a restart', async (t) => {
  t.test('with the cache off, at once', async (t) => {
    const app = await buildTestApp(t, { AUTH_CACHE_TTL_MS: 0 })
    const user = await createUser(app.db, { role: 1 })
    const admin = await createUser(app.db, { role: 10 })
    const self = () => app.inject({ url: '/api/log/self', headers: user.headers })
    const list = () => app.inject({ url: '/api/log/', headers: admin.headers })

    t.equal((await self()).statusCode, 200, 'enabled')
    await app.db.updateTable('users').set({ status: 2 }).where('id', '=', user.id).execute()
    const disabled = await self()
    t.equal(disabled.statusCode, 403, 'disabled')
    assertFailure(t, disabled.json(), /disabled/i)
    await app.db.updateTable('users').set({ status: 1 }).where('id', '=', user.id).execute()
    t.equal((await self()).statusCode, 200, 'enabled again')

    t.equal((await list()).statusCode, 200, 'admin')
    await app.db.updateTable('users').set({ role: 1 }).where('id', '=', admin.id).execute()
    t.equal((await list()).statusCode, 403, 'demoted')
    await app.db.updateTable('users').set({ role: 100 }).where('id', '=', admin.id).execute()
    t.equal((await list()).statusCode, 200, 'promoted to root')

    await app.db.updateTable('users').set({ access_token: 'rotated-token-0001' }).where('id', '=', user.id).execute()
    t.equal((await self()).statusCode, 401, 'the old token after a rotation')
    t.equal((await app.inject({ url: '/api/log/self', headers: { authorization: 'rotated-token-0001', 'new-api-user': String(user.id) } })).statusCode, 200, 'the new token')
  })

  t.test('with the cache on, once its TTL has passed', async (t) => {
    const app = await buildTestApp(t, { AUTH_CACHE_TTL_MS: 300 })
    const user = await createUser(app.db, { role: 1 })
    const admin = await createUser(app.db, { role: 10 })

    t.equal((await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 200, 'cached as enabled')
    t.equal((await app.inject({ url: '/api/log/', headers: admin.headers })).statusCode, 200, 'cached as admin')

    await app.db.updateTable('users').set({ status: 2 }).where('id', '=', user.id).execute()
    await app.db.updateTable('users').set({ role: 1 }).where('id', '=', admin.id).execute()

    const disabled = await pollStatus(async () => (await app.inject({ url: '/api/log/self', headers: user.headers })).statusCode, 403)
    t.equal(disabled, 403, 'the disabled user is refused within a few seconds')
    const demoted = await pollStatus(async () => (await app.inject({ url: '/api/log/', headers: admin.headers })).statusCode, 403)
    t.equal(demoted, 403, 'the demoted admin is refused within a few seconds')
  })

  t.test('the configuration refuses a cache longer than 5 s', async (t) => {
    t.equal(loadConfig({ AUTH_CACHE_TTL_MS: '5000' }).AUTH_CACHE_TTL_MS, 5000)
    t.throws(() => loadConfig({ AUTH_CACHE_TTL_MS: '5001' }), { message: /AUTH_CACHE_TTL_MS/ })
    t.throws(() => loadConfig({ AUTH_CACHE_TTL_MS: '300000' }), { message: /AUTH_CACHE_TTL_MS/ })
  })
})

// The real logger of buildApp (its serializers are inline in app.ts) writes to stdout, so the
// requests run in a child process whose stdout is captured; overriding `logger` in buildApp's
// options would replace those serializers and test something else.
const CHILD = `
const input = JSON.parse(process.env.LOG_CAPTURE_INPUT)
const { buildApp } = await import(input.appModule)
const { testConfig } = await import(input.helpersModule)
const { sql } = await import('kysely')
const app = await buildApp({ ...testConfig({ LOG_LEVEL: input.level }), DATABASE_URL: input.url })
const statuses = []
try {
  for (const step of input.steps) {
    if (step.sql !== undefined) await sql.raw(step.sql).execute(app.db)
    else statuses.push((await app.inject(step.request)).statusCode)
  }
} finally {
  await app.close()
}
process.stderr.write('STATUSES ' + JSON.stringify(statuses) + '\\n')
`

type Step = { request: InjectOptions } | { sql: string }

async function runWithLogs (url: string, level: string, steps: Step[]) {
  const root = path.join(import.meta.dirname, '..', '..')
  let env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'NODE_OPTIONS' || name.startsWith('TAP') || name.startsWith('_TAP')) continue
    env[name] = value
  }
  env = withoutChildCoverage(env)
  env.LOG_CAPTURE_INPUT = JSON.stringify({
    appModule: path.join(root, 'src', 'app.ts'),
    helpersModule: path.join(root, 'test', 'helpers', 'app.ts'),
    url,
    level,
    steps
  })
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
    cwd: root,
    env,
    maxBuffer: 64 * 1024 * 1024
  })
  const match = /STATUSES (\[.*\])/.exec(stderr)
  return { stdout, stderr, statuses: match ? JSON.parse(match[1]!) as number[] : [] }
}

t.test('credentials never reach the log output', async (t) => {
  const url = await createTestDatabase(t)
  const seeder = await buildApp({ ...testConfig(), DATABASE_URL: url })
  let user: TestUser, disabled: TestUser, key: { id: number, key: string }
  try {
    user = await createUser(seeder.db, { role: 1 })
    disabled = await createUser(seeder.db, { role: 1, status: 2 })
    key = await createApiKey(seeder.db, user.id)
    await insertLogs(seeder.db, [{ user_id: user.id, created_at: 1_700_000_000, type: 2, token_id: key.id }])
  } finally {
    await seeder.close()
  }

  const badToken = 'feedfacefeedfacefeedfacefeedface'
  const unknownKey = 'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef'
  const secrets: Array<[string, string]> = [
    ['access token', user.token],
    ['disabled user token', disabled.token],
    ['unknown access token', badToken],
    ['API key', key.key],
    ['unknown API key', unknownKey]
  ]
  const steps: Step[] = [
    { request: { url: '/api/log/self', headers: user.headers } },
    { request: { url: '/api/log/self', headers: { authorization: `Bearer ${badToken}`, 'new-api-user': String(user.id) } } },
    { request: { url: '/api/log/', headers: user.headers } },
    { request: { url: '/api/log/self', headers: disabled.headers } },
    { request: { url: '/api/log/self?p=0', headers: user.headers } },
    { request: { url: `/api/log/token?key=${key.key}` } },
    { request: { url: `/api/log/token?key=sk-${key.key}&page_size=0` } },
    { request: { url: '/api/log/token', headers: { authorization: `Bearer sk-${key.key}` } } },
    { request: { url: `/api/log/token?key=${unknownKey}` } },
    { request: { url: `/api/log/token?key=${key.key}&model_name=%00` } },
    { request: { url: '/api/log/self?model_name=%FF', headers: user.headers } },
    // Every lookup now fails on the server side: 500s, logged with their error.
    { sql: 'alter table users rename to users_gone' },
    { sql: 'alter table tokens rename to tokens_gone' },
    { request: { url: '/api/log/self', headers: user.headers } },
    { request: { url: `/api/log/token?key=${key.key}` } },
    { request: { url: '/api/log/token', headers: { authorization: key.key } } },
    { sql: 'alter table users_gone rename to users' },
    { sql: 'alter table tokens_gone rename to tokens' }
  ]

  for (const level of ['info', 'trace']) {
    t.test(`at level ${level}`, async (t) => {
      const { stdout, stderr, statuses } = await runWithLogs(url, level, steps)
      t.strictSame(statuses, [200, 401, 403, 403, 400, 200, 400, 200, 401, 400, 400, 500, 500, 500], 'the requests answered as planned')
      const lines = stdout.split('\n').filter((line) => line.trim() !== '')
      t.equal(lines.filter((line) => line.includes('"incoming request"')).length, 14, 'every request was logged')
      t.ok(lines.some((line) => line.includes('"level":50') && line.includes('request failed')), 'the 500s were logged with their error')
      t.ok(stdout.includes('key=[redacted]'), 'the token URL is logged, redacted')
      const output = stdout + stderr
      for (const [name, secret] of secrets) {
        t.notOk(output.includes(secret), `${name} absent`)
      }
      t.notOk(/bearer /i.test(output), 'no Authorization value')
    })
  }
})
