// Database trouble: every route answers the error envelope (503 when the database is unreachable,
// gone or too slow; 500 when a statement fails), never SQL, a stack or driver text, and the app
// keeps serving once the database is back.
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import pg from 'pg'
import { createTestDatabase, createUser, insertLogs, type TestUser } from '../helpers/app.js'
import { buildAppOn, lockLogs, whileChanged } from '../helpers/session.js'
import { readState, TEMPLATE_DB } from '../helpers/state.js'

// Driver and SQL text that must never reach a client.
const LEAK = /ECONNREFUSED|ECONNRESET|127\.0\.0\.1|postgres|select |from logs|relation|column|does not exist|terminat|timeout|statement|stack|\bat .*\.(?:js|ts)|node_modules|canceling/i

type Assert = Pick<typeof t, 'equal' | 'type' | 'not' | 'notMatch' | 'strictSame'>

/** The failure envelope: success false, the expected message, nothing that leaks the cause. */
function assertFailure (t: Assert, res: { statusCode: number, body: string, json: () => any }, status: number, message: string | null, label: string) {
  t.equal(res.statusCode, status, `${label}: status`)
  const body = res.json()
  t.equal(body.success, false, `${label}: success false`)
  t.type(body.message, 'string', `${label}: a message`)
  t.not(body.message, '', `${label}: a non-empty message`)
  if (message !== null) t.equal(body.message, message, `${label}: message`)
  t.equal(body.data, undefined, `${label}: no data`)
  t.notMatch(res.body, LEAK, `${label}: no driver text, SQL or stack`)
}

/** /readyz's 503: the envelope with LOG_DB_UNAVAILABLE, and its data naming the failed check. */
function assertNotReady (t: Assert, res: { statusCode: number, body: string, json: () => any }, label: string) {
  t.equal(res.statusCode, 503, `${label}: status`)
  t.strictSame(res.json(), {
    success: false,
    message: 'database unavailable',
    code: 'LOG_DB_UNAVAILABLE',
    data: { status: 'not_ready', database: 'unavailable', migrations: 'unknown' }
  }, `${label}: the envelope and the failed check`)
  t.notMatch(res.body, LEAK, `${label}: no driver text, SQL or stack`)
}

/** The routes that read logs, each with the caller it needs and the message it fails with. */
function readRoutes (admin: TestUser, user: TestUser): Array<{ url: string, user: TestUser, message: string }> {
  return [
    { url: '/api/log/', user: admin, message: '获取日志失败' },
    { url: '/api/log/self', user, message: '获取日志失败' },
    { url: '/api/log/search?keyword=hello', user: admin, message: '搜索日志失败' },
    { url: '/api/log/self/search?keyword=hello', user, message: '搜索日志失败' },
    { url: '/api/log/stat', user: admin, message: '获取统计信息失败' },
    { url: '/api/log/self/stat', user, message: '获取统计信息失败' }
  ]
}

async function adminQuery (sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: readState().adminUrl })
  await admin.connect()
  try {
    await admin.query(sql)
  } finally {
    await admin.end()
  }
}

const headers = { authorization: 'Bearer 0123456789abcdef0123456789abcdef', 'new-api-user': '1' }

t.test('nothing listens where the database should be: 503 envelopes', async (t) => {
  const app = await buildAppOn(t, 'postgres://postgres:postgres@127.0.0.1:1/x', { DB_CONNECT_TIMEOUT_MS: 200 })
  const requests: Array<{ method?: 'GET' | 'DELETE', url: string, headers?: Record<string, string> }> = [
    { url: '/api/log/', headers },
    { url: '/api/log/self', headers },
    { url: '/api/log/stat', headers },
    { url: '/api/log/self/stat', headers },
    { url: '/api/log/search?keyword=x', headers },
    { url: '/api/log/self/search?keyword=x', headers },
    { method: 'DELETE', url: '/api/log/?target_timestamp=100', headers },
    { url: '/api/log/token?key=x' },
    { url: '/api/log/token', headers: { authorization: 'Bearer sk-abc' } }
  ]
  for (const r of requests) {
    const res = await app.inject({ method: r.method ?? 'GET', url: r.url, headers: r.headers })
    assertFailure(t, res, 503, null, `${r.method ?? 'GET'} ${r.url}`)
  }

  // Not ready, with which check failed beside the envelope; alive all the same.
  assertNotReady(t, await app.inject({ url: '/readyz' }), 'GET /readyz')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'healthz makes no database call')

  // Checks that need no database still answer as usual.
  const anonymous = await app.inject({ url: '/api/log/' })
  t.equal(anonymous.statusCode, 401, 'no credentials is still a 401')
  const missing = await app.inject({ url: '/api/log/token' })
  t.equal(missing.statusCode, 401, 'no key is still a 401')
})

t.test('the database is dropped while the app runs', async (t) => {
  const url = await createTestDatabase(t)
  const name = new URL(url).pathname.slice(1)
  // The auth cache lets requests get past authentication to the route's own query.
  const app = await buildAppOn(t, url, { AUTH_CACHE_TTL_MS: 5000 })
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  await insertLogs(app.db, [{ user_id: user.id, created_at: 100, type: 2, content: 'hello' }])

  const routes = readRoutes(admin, user)
  // Warm the auth cache (and the pool) with one good request per user.
  for (const r of routes) {
    const res = await app.inject({ url: r.url, headers: r.user.headers })
    t.equal(res.statusCode, 200, `${r.url} answers before the drop`)
  }

  await adminQuery(`drop database ${name} with (force)`)

  for (const r of routes) {
    const res = await app.inject({ url: r.url, headers: r.user.headers })
    assertFailure(t, res, 503, r.message, `${r.url} after the drop`)
  }
  assertNotReady(t, await app.inject({ url: '/readyz' }), '/readyz after the drop')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'alive after the drop')

  // The database comes back (empty, from the migrated template): the same app serves it.
  await adminQuery(`create database ${name} template ${TEMPLATE_DB}`)
  // By itself, without a restart; on a busy machine the first probe after the drop may still
  // miss its one-second deadline, so a few are allowed.
  let ready = await app.inject({ url: '/readyz' })
  for (let i = 0; i < 50 && ready.statusCode !== 200; i++) {
    await sleep(200)
    ready = await app.inject({ url: '/readyz' })
  }
  t.equal(ready.statusCode, 200, 'readyz answers again')
  t.match(ready.json(), { success: true, data: { status: 'ready' } })
  const again = await createUser(app.db, { role: 10 })
  const list = await app.inject({ url: '/api/log/', headers: again.headers })
  t.equal(list.statusCode, 200, 'the list answers again')
  t.strictSame(list.json(), { success: true, message: '', data: { items: [], total: 0, total_exact: true, page: 1, page_size: 20, next_cursor: null } })
})

t.test('a statement that runs into statement_timeout answers 503', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildAppOn(t, url, { DB_STATEMENT_TIMEOUT_MS: 100 })
  const admin = await createUser(app.db, { role: 10 })
  const user = await createUser(app.db)
  await insertLogs(app.db, [{ user_id: user.id, created_at: 100, type: 2, content: 'hello' }])

  // Another session locks the logs table: every read of it waits until the timeout cancels it.
  await whileChanged(t, url, lockLogs, async () => {
    for (const r of readRoutes(admin, user)) {
      assertFailure(t, await app.inject({ url: r.url, headers: r.user.headers }), 503, r.message, `${r.url} while logs is locked`)
    }
  })

  // A few tries: with a 100 ms limit, a connection's first statement over the partitioned layout
  // (fifty partitions' catalog entries to load) can run past it on a busy machine.
  let res = await app.inject({ url: '/api/log/self', headers: user.headers })
  for (let i = 0; i < 5 && res.statusCode === 503; i++) res = await app.inject({ url: '/api/log/self', headers: user.headers })
  t.equal(res.statusCode, 200, 'answers again once the lock is gone')
  t.equal(res.json().data.total, 1)
})

t.test('a failing statement answers 500 with the route\'s message and no SQL', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildAppOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  await insertLogs(app.db, [{ user_id: admin.id, created_at: 100, type: 2, content: 'hello' }])

  // A column the queries select is gone (as if the schema had been changed under the service).
  const moveContent = { apply: ['alter table logs rename column content to content_moved'], undo: 'alter table logs rename column content_moved to content' }
  await whileChanged(t, url, moveContent, async () => {
    assertFailure(t, await app.inject({ url: '/api/log/', headers: admin.headers }), 500, '获取日志失败', 'list')
    assertFailure(t, await app.inject({ url: '/api/log/search?keyword=hello', headers: admin.headers }), 500, '搜索日志失败', 'search')
  })

  const res = await app.inject({ url: '/api/log/search?keyword=hello', headers: admin.headers })
  t.equal(res.statusCode, 200, 'answers again once the column is back')
  t.equal(res.json().data.length, 1)
})

t.test('a statement that loses a conflict (serialization failure, deadlock) answers 503 with Retry-After: worth a retry', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildAppOn(t, url)
  const admin = await createUser(app.db, { role: 10 })
  for (const errcode of ['serialization_failure', 'deadlock_detected']) {
    // Every insert into logs fails as a write that lost to another transaction would.
    const conflicting = {
      apply: [
        `create function lose_conflict() returns trigger language plpgsql as $$ begin raise exception 'lost' using errcode = '${errcode}'; end $$`,
        'create trigger lose_conflict before insert on logs for each row execute function lose_conflict()'
      ],
      undo: 'drop trigger lose_conflict on logs; drop function lose_conflict()'
    }
    await whileChanged(t, url, conflicting, async () => {
      const res = await app.inject({ method: 'POST', url: '/api/log/', headers: admin.headers, payload: [{ user_id: admin.id, type: 2, content: 'x' }] })
      assertFailure(t, res, 503, null, errcode)
      t.equal(res.json().code, 'LOG_DB_UNAVAILABLE', `${errcode}: code`)
      t.equal(res.headers['retry-after'], '1', `${errcode}: Retry-After`)
    })
  }
  const res = await app.inject({ method: 'POST', url: '/api/log/', headers: admin.headers, payload: [{ user_id: admin.id, type: 2, content: 'x' }] })
  t.equal(res.statusCode, 200, 'writes again once the conflict is gone')
})
