import t, { type Test } from 'tap'
import type { App } from '../../src/app.js'
import { buildTestApp, createApiKey, createUser, insertLogs } from '../helpers/app.js'

// Bad input is the client's mistake: a 4xx (mostly 400) in the error envelope, naming the
// parameter, never a 500. Query strings are written raw so that %00 and broken UTF-8 reach the app.

const T = 1_700_000_000

interface Route {
  name: string
  method: 'GET' | 'DELETE'
  path: string
  headers: Record<string, string>
  /** parameters the route needs to answer 200 (replaced when the parameter under test is one of them) */
  base: Record<string, string>
  strings: string[]
  ints: string[]
  /** what a message about `param` must contain */
  names?: (param: string) => RegExp
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const named = (param: string) => new RegExp(escape(param))

function url (route: Route, param: string | null, raw: string) {
  const base = Object.entries(route.base)
    .filter(([name]) => name !== param)
    .map(([name, value]) => `${name}=${encodeURIComponent(value)}`)
  return `${route.path}?${[...base, raw].filter((s) => s !== '').join('&')}`
}

async function send (app: App, route: Route, target: string) {
  return await app.inject({ method: route.method, url: target, headers: route.headers })
}

/** A 400 (or `status`) in the error envelope whose message names the parameter; never a 5xx. */
async function expectRejected (t: Test, app: App, route: Route, param: string, raw: string, status = 400) {
  const target = url(route, param, raw)
  const label = `${route.method} ${target.slice(0, 90)}`
  const res = await send(app, route, target)
  t.ok(res.statusCode < 500, `${label}: not a 5xx`)
  t.equal(res.statusCode, status, `${label}: ${res.body.slice(0, 160)}`)
  let body: { success?: unknown, message?: unknown, data?: unknown } = {}
  try { body = res.json() } catch { t.fail(`${label}: body is not JSON`) }
  t.equal(body.success, false, `${label}: success false`)
  t.type(body.message, 'string', `${label}: message is a string`)
  t.match(String(body.message), (route.names ?? named)(param), `${label}: message names ${param}`)
  t.notOk('data' in body, `${label}: no data`)
}

async function expectOk (t: Test, app: App, route: Route, raw: string) {
  const target = url(route, null, raw)
  const res = await send(app, route, target)
  t.equal(res.statusCode, 200, `${route.method} ${target.slice(0, 90)}: ${res.statusCode === 200 ? 'ok' : res.body.slice(0, 160)}`)
  t.match(res.json(), { success: true, message: '' })
}

t.test('bad input is never a 500', async (t) => {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 1_000_000 })
  const admin = await createUser(app.db, { role: 10 })
  const apiKey = await createApiKey(app.db, admin.id)
  await insertLogs(app.db, [
    { user_id: admin.id, created_at: T, type: 2, content: 'abc one', token_id: apiKey.id },
    { user_id: admin.id, created_at: T + 1, type: 3, content: 'abc two', token_id: apiKey.id },
    { user_id: admin.id, created_at: T + 2, type: 4, content: 'three' }
  ])
  const headers = admin.headers
  const listInts = ['type', 'start_timestamp', 'end_timestamp', 'p', 'page_size']
  const statInts = ['type', 'start_timestamp', 'end_timestamp']
  const routes: Route[] = [
    { name: 'admin list', method: 'GET', path: '/api/log/', headers, base: {}, strings: ['token_name', 'model_name', 'group', 'request_id', 'username'], ints: [...listInts, 'channel'] },
    { name: 'self list', method: 'GET', path: '/api/log/self', headers, base: {}, strings: ['token_name', 'model_name', 'group', 'request_id'], ints: listInts },
    { name: 'admin search', method: 'GET', path: '/api/log/search', headers, base: { keyword: 'abc' }, strings: ['keyword'], ints: [] },
    { name: 'self search', method: 'GET', path: '/api/log/self/search', headers, base: { keyword: 'abc' }, strings: ['keyword'], ints: [] },
    { name: 'admin stat', method: 'GET', path: '/api/log/stat', headers, base: {}, strings: ['token_name', 'model_name', 'group', 'username'], ints: [...statInts, 'channel'] },
    { name: 'self stat', method: 'GET', path: '/api/log/self/stat', headers, base: {}, strings: ['token_name', 'model_name', 'group'], ints: statInts },
    { name: 'token', method: 'GET', path: '/api/log/token', headers: { authorization: `Bearer sk-${apiKey.key}` }, base: {}, strings: ['key'], ints: ['p', 'page_size'] },
    // The contract fixes the purge's message: `target timestamp is required`.
    { name: 'purge', method: 'DELETE', path: '/api/log/', headers, base: { target_timestamp: '1' }, strings: [], ints: ['target_timestamp'], names: (param) => param === 'target_timestamp' ? /target.timestamp/ : named(param) }
  ]

  for (const route of routes) {
    t.test(`${route.name}: ${route.method} ${route.path}`, async (t) => {
      t.test('the well-formed request answers 200 (the baseline)', async (t) => {
        await expectOk(t, app, route, '')
      })

      t.test('a NUL byte in a value or a name is a 400', async (t) => {
        for (const param of [...route.strings, ...route.ints]) {
          await expectRejected(t, app, route, param, `${param}=a%00b`)
          await expectRejected(t, app, route, param, `${param}=%00`)
          await expectRejected(t, app, route, param, `${param}=1%00`)
        }
        await expectRejected(t, app, route, 'mod', 'mod%00el=x')
      })

      t.test('invalid UTF-8 or percent-encoding is a 400', async (t) => {
        for (const param of [...route.strings, ...route.ints]) {
          for (const bad of ['%FF', 'ab%C3%28', '%C3', '%E0%A4', '%ED%A0%80', '%C0%AF', '%zz', '%']) {
            await expectRejected(t, app, route, param, `${param}=${bad}`)
          }
        }
        await expectRejected(t, app, route, '%FF', '%FF=1')
      })

      t.test('very long values are a 400', async (t) => {
        for (const param of route.strings) {
          const length = param === 'keyword' ? 100_000 : 10_000
          await expectRejected(t, app, route, param, `${param}=${'x'.repeat(length)}`)
          await expectRejected(t, app, route, param, `${param}=${'模'.repeat(length)}`)
        }
        for (const param of route.ints) {
          await expectRejected(t, app, route, param, `${param}=${'9'.repeat(10_000)}`)
        }
      })

      t.test('values of the wrong type or out of range are a 400', async (t) => {
        for (const param of route.ints) {
          for (const bad of ['abc', '1e999', '-1e999', 'Infinity', 'NaN', '99999999999999999999', '-5', '1.5', 'true', '[1]']) {
            await expectRejected(t, app, route, param, `${param}=${encodeURIComponent(bad)}`)
          }
        }
      })

      t.test('an integer is decimal digits with an optional minus sign, nothing else', async (t) => {
        // Each of these was read as a number by Number() coercion: 16, 5, 10, 3, 7, 0.
        for (const param of route.ints) {
          for (const bad of ['0x10', '%205', '5%20', '1e1', '0b11', '0o7', '%20%20', '+5', '1_000', '%095', '05.0']) {
            await expectRejected(t, app, route, param, `${param}=${bad}`)
          }
        }
      })

      t.test('a parameter given twice is a 400', async (t) => {
        for (const param of route.strings) await expectRejected(t, app, route, param, `${param}=abc&${param}=abd`)
        for (const param of route.ints) await expectRejected(t, app, route, param, `${param}=1&${param}=2`)
      })

      t.test('unknown parameters are ignored', async (t) => {
        await expectOk(t, app, route, 'foo=bar')
        await expectOk(t, app, route, 'foo=bar&zzz=1&Type=abc&PAGE_SIZE=-1&_=1714000000000')
        await expectOk(t, app, route, `unknown=${'x'.repeat(5000)}`)
        await expectOk(t, app, route, 'flag')
      })
    })
  }

  t.test('admin-only parameters on the user routes are unknown there: ignored, whatever their value', async (t) => {
    for (const path of ['/api/log/self', '/api/log/self/stat', '/api/log/self/search?keyword=abc']) {
      const route: Route = { name: path, method: 'GET', path: path.split('?')[0]!, headers, base: path.includes('keyword') ? { keyword: 'abc' } : {}, strings: [], ints: [] }
      await expectOk(t, app, route, 'channel=abc')
      await expectOk(t, app, route, 'channel=1e999')
      await expectOk(t, app, route, `username=${'x'.repeat(300)}`)
      await expectOk(t, app, route, 'channel=1&channel=2&username=a&username=b')
    }
  })

  t.test('no bad purge deleted anything', async (t) => {
    const { total } = await app.db.selectFrom('logs').select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow()
    t.equal(total, 3)
  })

  t.test('an unknown route is a 404 in the envelope', async (t) => {
    const cases: Array<['GET' | 'POST' | 'PUT' | 'DELETE', string]> = [
      ['GET', '/api/log/nope'],
      ['GET', '/api/log/self/nope'],
      ['GET', '/api/nothing'],
      ['GET', '/'],
      ['POST', '/api/log/self'],
      ['PUT', '/api/log/'],
      ['PUT', '/api/log/self'],
      ['DELETE', '/api/log/self'],
      ['GET', '/api/log/search/extra?keyword=a']
    ]
    for (const [method, path] of cases) {
      const res = await app.inject({ method, url: path, headers })
      t.equal(res.statusCode, 404, `${method} ${path}`)
      const body = res.json()
      t.equal(body.success, false, `${method} ${path}`)
      t.type(body.message, 'string')
      t.ok(body.message.length > 0)
      t.notOk('data' in body)
    }
  })
})
