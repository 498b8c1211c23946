import t from 'tap'
import { redactUrl } from '../../src/app.js'
import { INVALID_PARAM, parseQueryString } from '../../src/lib/querystring.js'
import { buildTestApp, createUser } from '../helpers/app.js'
import { assertBadRequest } from '../helpers/envelope.js'

t.test('parseQueryString', async (t) => {
  t.test('plain pairs', async (t) => {
    t.strictSame({ ...parseQueryString('p=2&page_size=10') }, { p: '2', page_size: '10' })
    t.strictSame({ ...parseQueryString('') }, {})
  })

  t.test('repeated keys become arrays, in order', async (t) => {
    t.strictSame({ ...parseQueryString('a=1&a=2') }, { a: ['1', '2'] })
    t.strictSame({ ...parseQueryString('a=1&b=x&a=2&a=3') }, { a: ['1', '2', '3'], b: 'x' })
  })

  t.test('+ is a space, %2B a plus', async (t) => {
    t.strictSame({ ...parseQueryString('keyword=hello+world') }, { keyword: 'hello world' })
    t.strictSame({ ...parseQueryString('keyword=a%2Bb+c') }, { keyword: 'a+b c' })
    t.strictSame({ ...parseQueryString('my+name=1') }, { 'my name': '1' })
  })

  t.test('percent-encoded UTF-8 is decoded', async (t) => {
    t.strictSame({ ...parseQueryString('model_name=%E4%B8%AD%E6%96%87') }, { model_name: '中文' })
    t.strictSame({ ...parseQueryString('k=%25_%5C') }, { k: '%_\\' })
  })

  t.test('an empty value (or a name without =) means the parameter is absent; empty pairs are skipped', async (t) => {
    t.strictSame({ ...parseQueryString('flag&&x=1&') }, { x: '1' })
    t.strictSame({ ...parseQueryString('x=') }, {})
    t.strictSame({ ...parseQueryString('x=&x=2') }, { x: '2' })
  })

  t.test('a value may hold =', async (t) => {
    t.strictSame({ ...parseQueryString('k=a=b') }, { k: 'a=b' })
  })

  t.test('names cannot reach the prototype', async (t) => {
    const out = parseQueryString('__proto__=x&constructor=y')
    t.equal(Object.getPrototypeOf(out), null)
    t.ok(Object.hasOwn(out, '__proto__'))
    t.equal(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, 'x')
    t.equal(out.constructor, 'y')
  })

  t.test('a valid query carries no INVALID_PARAM mark', async (t) => {
    t.equal(parseQueryString('a=1&b=%E4%B8%AD')[INVALID_PARAM], undefined)
  })

  t.test('a NUL byte marks the parameter', async (t) => {
    const out = parseQueryString('p=1&model_name=%00&x=2')
    t.match(out[INVALID_PARAM], { name: 'model_name', reason: /NUL/ })
    t.notOk(Object.hasOwn(out, 'model_name'), 'the bad value is not kept')
    t.equal(out.p, '1')
    t.equal(out.x, '2')
    t.match(parseQueryString('model_name=ab%00cd')[INVALID_PARAM], { name: 'model_name' })
  })

  t.test('a NUL byte in a name marks it', async (t) => {
    const mark = parseQueryString('a%00b=1')[INVALID_PARAM]
    t.ok(mark)
    t.match(mark, { reason: /NUL/ })
    t.notOk(mark?.name.includes('\0'), 'the reported name holds no raw NUL')
  })

  t.test('invalid UTF-8 marks the parameter', async (t) => {
    for (const raw of ['%FF', '%E4%B8', '%C3', '%zz', '%']) {
      t.match(parseQueryString(`model_name=${raw}`)[INVALID_PARAM], { name: 'model_name', reason: /UTF-8/ }, raw)
    }
  })

  t.test('invalid UTF-8 in a name marks it', async (t) => {
    t.match(parseQueryString('%FF=1')[INVALID_PARAM], { name: '%FF', reason: /UTF-8/ })
  })

  t.test('the first bad parameter is the one named', async (t) => {
    t.match(parseQueryString('token_name=%FF&model_name=%00')[INVALID_PARAM], { name: 'token_name' })
    t.match(parseQueryString('model_name=%00&token_name=%FF')[INVALID_PARAM], { name: 'model_name' })
  })
})

t.test('through the app, a bad parameter is a 400 naming it', async (t) => {
  const app = await buildTestApp(t)
  const user = await createUser(app.db)

  for (const raw of ['%00', 'gpt%00', '%FF', '%E4%B8']) {
    t.test(`/api/log/self?model_name=${raw}`, async (t) => {
      assertBadRequest(t, await app.inject({ url: `/api/log/self?model_name=${raw}`, headers: user.headers }), /model_name/)
    })
  }

  t.test('admin routes and /token too', async (t) => {
    const admin = await createUser(app.db, { role: 10 })
    assertBadRequest(t, await app.inject({ url: '/api/log/?username=%FF', headers: admin.headers }), /username/, 'list')
    assertBadRequest(t, await app.inject({ url: '/api/log/search?keyword=%00', headers: admin.headers }), /keyword/, 'search')
    assertBadRequest(t, await app.inject({ url: '/api/log/token?key=%E4%B8' }), /key/, 'token')
  })

  t.test('well-formed UTF-8 still works', async (t) => {
    const res = await app.inject({ url: '/api/log/self?model_name=%E4%B8%AD', headers: user.headers })
    t.equal(res.statusCode, 200)
    t.match(res.json(), { success: true, data: { items: [], total: 0 } })
  })
})

t.test('redactUrl', async (t) => {
  t.test('hides the key value', async (t) => {
    t.equal(redactUrl('/api/log/token?key=sk-secret123'), '/api/log/token?key=[redacted]')
    t.equal(redactUrl('/api/log/token?p=2&key=sk-secret123&page_size=5'), '/api/log/token?p=2&key=[redacted]&page_size=5')
  })

  t.test('hides every key, however the name is spelled', async (t) => {
    const url = redactUrl('/api/log/token?key=aaa111&KEY=bbb222&%6Bey=ccc333&key=ddd444')
    for (const secret of ['aaa111', 'bbb222', 'ccc333', 'ddd444']) t.notOk(url.includes(secret), secret)
    t.equal(url, '/api/log/token?key=[redacted]&key=[redacted]&key=[redacted]&key=[redacted]')
  })

  t.test('a key without a value or with broken encoding is still hidden', async (t) => {
    t.equal(redactUrl('/x?key'), '/x?key=[redacted]')
    t.equal(redactUrl('/x?key=%FFsecret'), '/x?key=[redacted]')
  })

  t.test('leaves other parameters and URLs without a query alone', async (t) => {
    t.equal(redactUrl('/api/log/self'), '/api/log/self')
    t.equal(redactUrl('/api/log/self?p=1&&type=2&'), '/api/log/self?p=1&&type=2&')
    t.equal(redactUrl('/api/log/self?model_name=gpt-4&monkey=1&keyword=k'), '/api/log/self?model_name=gpt-4&monkey=1&keyword=k')
  })

  t.test('a name that cannot be read as a plain parameter name is hidden, value and all', async (t) => {
    // Each of these is refused by the server, and each was written to the log as it came.
    for (const pair of ['key+=sk-secret1', 'key%00=sk-secret1', '%FFkey=sk-secret1', 'key%3Dsk-secret1', 'ke%20y=sk-secret1', 'key.=sk-secret1', '%FF=sk-secret1']) {
      const url = redactUrl(`/api/log/token?p=1&${pair}`)
      t.equal(url, '/api/log/token?p=1&[redacted]', pair)
    }
  })
})
