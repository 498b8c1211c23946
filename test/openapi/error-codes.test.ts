import t from 'tap'
import type { InjectOptions } from 'fastify'
import { clientErrorCode, ERROR_CODES } from '../../src/errors.js'
import { buildTestApp, createApiKey, createUser } from '../helpers/app.js'

t.test('clientErrorCode', async (t) => {
  t.equal(clientErrorCode('LOG_TOKEN_INVALID', 401), 'LOG_TOKEN_INVALID', 'ours is kept')
  t.equal(clientErrorCode('FST_ERR_CTP_INVALID_JSON_BODY', 400), 'LOG_BAD_REQUEST', "Fastify's own 400")
  t.equal(clientErrorCode('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415), 'LOG_UNSUPPORTED_MEDIA_TYPE')
  t.equal(clientErrorCode('FST_ERR_CTP_BODY_TOO_LARGE', 413), 'LOG_PAYLOAD_TOO_LARGE')
  t.equal(clientErrorCode(undefined, 404), 'LOG_NOT_FOUND')
  t.equal(clientErrorCode('SOMETHING', 429), 'LOG_RATE_LIMITED')
  t.equal(clientErrorCode(undefined, 401), 'LOG_UNAUTHORIZED')
})

// Whatever goes wrong, the envelope's code is one the document lists, so a generated client's
// enum covers every answer.
t.test('every error answer carries a code from the documented enum', async (t) => {
  const app = await buildTestApp(t, { TOKEN_RATE_LIMIT_MAX: 2, INGEST_BODY_LIMIT: 1024 })
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  const documented = doc.components.schemas.ErrorResponse.properties.code.enum as string[]
  t.strictSame(documented, [...ERROR_CODES])
  t.ok(doc.components.schemas.ErrorResponse.required.includes('code'), 'code is required')
  t.ok(doc.paths['/api/log/self'].get.responses.default, 'a default error response is declared')

  const user = await createUser(app.db)
  const admin = await createUser(app.db, { role: 10 })
  const disabled = await createUser(app.db, { status: 2 })
  const key = await createApiKey(app.db, user.id)
  const cases: Array<[string, InjectOptions, number]> = [
    ['a bad parameter', { url: '/api/log/self?page_size=0', headers: user.headers }, 400],
    ['a missing target', { method: 'DELETE', url: '/api/log/', headers: admin.headers }, 400],
    ['a body that is not JSON', { method: 'DELETE', url: '/api/log/?target_timestamp=1', headers: { ...admin.headers, 'content-type': 'application/json' }, payload: '{' }, 400],
    ['a body of an unknown type', { method: 'DELETE', url: '/api/log/?target_timestamp=1', headers: { ...admin.headers, 'content-type': 'text/weird' }, payload: 'x' }, 415],
    ['a batch over the body limit', { method: 'POST', url: '/api/log/', headers: { ...admin.headers, 'content-type': 'application/json' }, payload: JSON.stringify([{ user_id: 1, type: 2, content: 'x'.repeat(2000) }]) }, 413],
    ['no credentials', { url: '/api/log/self' }, 401],
    ['an unknown key', { url: '/api/log/token?key=nope' }, 401],
    ['a disabled user', { url: '/api/log/self', headers: disabled.headers }, 403],
    ['a user on an admin route', { url: '/api/log/', headers: user.headers }, 403],
    ['an unknown route', { url: '/api/nothing' }, 404],
    ['the rate limit', { url: '/api/log/token', headers: { authorization: `Bearer ${key.key}` } }, 429]
  ]
  for (const [label, request, status] of cases) {
    // The key's one allowed request (the unknown key took the other) before the limit's case.
    if (status === 429) t.equal((await app.inject(request)).statusCode, 200, 'within the limit')
    const res = await app.inject(request)
    t.equal(res.statusCode, status, `${label}: ${status}`)
    const body = res.json() as { success: boolean, code?: string }
    t.equal(body.success, false, `${label}: the envelope`)
    t.ok(documented.includes(body.code ?? ''), `${label}: code ${body.code} is documented`)
  }
})
