import t from 'tap'
import { buildTestApp, createApiKey, createUser } from '../helpers/app.js'

// The response headers the document declares are the ones the service sends.
t.test('the token route sends every header its 200 and 429 declare', async (t) => {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 1 })
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  const responses = doc.paths['/api/log/token'].get.responses as Record<string, { headers?: Record<string, unknown> }>
  const user = await createUser(app.db)
  const key = await createApiKey(app.db, user.id)
  const request = { url: '/api/log/token', headers: { authorization: `Bearer ${key.key}`, origin: 'https://page.test' } }

  const ok = await app.inject(request)
  t.equal(ok.statusCode, 200)
  const declared200 = Object.keys(responses['200']?.headers ?? {})
  t.ok(declared200.length >= 5, `200 declares ${declared200.join(', ')}`)
  for (const name of declared200) t.ok(ok.headers[name.toLowerCase()] !== undefined, `200 sends ${name}`)

  const limited = await app.inject(request)
  t.equal(limited.statusCode, 429)
  const declared429 = Object.keys(responses['429']?.headers ?? {})
  t.ok(declared429.includes('Retry-After'), `429 declares ${declared429.join(', ')}`)
  for (const name of declared429) t.ok(limited.headers[name.toLowerCase()] !== undefined, `429 sends ${name}`)
})

t.test('the preflight sends every header its documented 204 declares, with the documented values', async (t) => {
  const app = await buildTestApp(t)
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  const op = doc.paths['/api/log/token'].options as { responses: Record<string, { headers?: Record<string, { schema: { enum?: string[], example?: unknown } }> }> }
  const res = await app.inject({ method: 'OPTIONS', url: '/api/log/token', headers: { origin: 'https://page.test', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } })
  t.equal(res.statusCode, 204)
  const declared = op.responses['204']?.headers ?? {}
  t.ok(Object.keys(declared).length >= 4, `204 declares ${Object.keys(declared).join(', ')}`)
  for (const [name, header] of Object.entries(declared)) {
    const sent = res.headers[name.toLowerCase()]
    t.ok(sent !== undefined, `204 sends ${name}`)
    const expected = header.schema.enum?.[0] ?? header.schema.example
    if (expected !== undefined) t.equal(String(sent).replace(/\s/g, ''), String(expected).replace(/\s/g, ''), `${name} is as documented`)
  }
  const notPreflight = await app.inject({ method: 'OPTIONS', url: '/api/log/token' })
  t.equal(notPreflight.statusCode, 400, 'without Origin: the documented 400')
})
