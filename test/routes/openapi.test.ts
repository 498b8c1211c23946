// GET /openapi.json (the OpenAPI 3 description generated clients are built from) and GET /healthz.
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'

interface Parameter { name: string, in: string, required?: boolean, schema?: Record<string, unknown> }
interface Operation {
  operationId?: string
  summary?: string
  parameters?: Parameter[]
  security?: Array<Record<string, string[]>>
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>
}
interface Schema { $ref?: string, type?: string, properties?: Record<string, Schema>, items?: Schema, required?: string[], maximum?: number, minimum?: number, default?: unknown }
interface Document {
  openapi: string
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, Schema>, securitySchemes?: Record<string, { type: string, in?: string, name?: string }> }
}

const filterParams = ['type', 'start_timestamp', 'end_timestamp', 'token_name', 'model_name', 'group']

// Every route of the contract: its query parameters and the error statuses it can answer.
const routes: Array<{ method: string, path: string, params: string[], absent?: string[], errors: string[] }> = [
  { method: 'get', path: '/api/log', params: ['p', 'page_size', ...filterParams, 'request_id', 'username', 'channel'], errors: ['400', '401', '403', '503'] },
  { method: 'get', path: '/api/log/stat', params: [...filterParams, 'username', 'channel'], errors: ['400', '401', '403', '503'] },
  { method: 'get', path: '/api/log/search', params: ['keyword'], errors: ['400', '401', '403', '503'] },
  { method: 'delete', path: '/api/log', params: ['target_timestamp'], errors: ['400', '401', '403', '409', '503'] },
  { method: 'get', path: '/api/log/self', params: ['p', 'page_size', ...filterParams, 'request_id'], absent: ['username', 'channel'], errors: ['400', '401', '403', '503'] },
  { method: 'get', path: '/api/log/self/stat', params: filterParams, absent: ['username', 'channel'], errors: ['400', '401', '403', '503'] },
  { method: 'get', path: '/api/log/self/search', params: ['keyword'], errors: ['400', '401', '403', '503'] },
  { method: 'get', path: '/api/log/token', params: ['p', 'page_size'], errors: ['400', '401', '429', '503'] },
  { method: 'get', path: '/healthz', params: [], errors: ['400'] },
  { method: 'get', path: '/readyz', params: [], errors: ['400', '503'] }
]

t.test('GET /openapi.json', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ url: '/openapi.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /application\/json/)
  const doc = res.json() as Document
  t.match(doc.openapi, /^3\.\d+\.\d+$/, 'an OpenAPI 3 document')
  t.type(doc.paths, 'object')

  // The document may spell the prefix route with or without its trailing slash.
  const operation = (method: string, path: string): Operation | undefined =>
    doc.paths[path]?.[method] ?? doc.paths[`${path}/`]?.[method]

  const deref = (schema: Schema | undefined): Schema | undefined => {
    if (schema?.$ref === undefined) return schema
    const name = schema.$ref.replace('#/components/schemas/', '')
    return doc.components?.schemas?.[name]
  }

  const param = (op: Operation | undefined, name: string) => op?.parameters?.find((p) => p.name === name && p.in === 'query')

  const dataSchema = (op: Operation | undefined): Schema | undefined =>
    deref(deref(op?.responses?.['200']?.content?.['application/json']?.schema)?.properties?.data)

  t.test('every route has a unique operationId and a summary', async (t) => {
    const ids: string[] = []
    for (const r of routes) {
      const op = operation(r.method, r.path)
      t.ok(op, `${r.method.toUpperCase()} ${r.path} is described`)
      t.type(op?.operationId, 'string', `${r.path}: operationId`)
      t.not(op?.operationId, '', `${r.path}: operationId`)
      t.type(op?.summary, 'string', `${r.path}: summary`)
      t.not(op?.summary, '', `${r.path}: summary`)
      ids.push(op?.operationId ?? '')
    }
    t.equal(new Set(ids).size, routes.length, 'operationIds are unique')

    // No two operations anywhere in the document share an operationId.
    const all = Object.values(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId))
    t.equal(new Set(all).size, all.length)
  })

  t.test('query parameters', async (t) => {
    for (const r of routes) {
      const op = operation(r.method, r.path)
      for (const name of r.params) t.ok(param(op, name), `${r.method.toUpperCase()} ${r.path} documents ${name}`)
      for (const name of r.absent ?? []) t.notOk(param(op, name), `${r.method.toUpperCase()} ${r.path} does not offer ${name}`)
    }

    const self = operation('get', '/api/log/self')
    t.match(param(self, 'page_size'), { required: false, schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } })
    t.match(param(self, 'p'), { schema: { type: 'integer', minimum: 1 } })
    t.not(param(self, 'p')?.required, true, 'p is optional')
    t.match(param(operation('get', '/api/log'), 'page_size'), { schema: { maximum: 100 } })
    t.match(param(operation('get', '/api/log/token'), 'page_size'), { schema: { minimum: 1, maximum: 1000, default: 100 } })
    t.match(param(self, 'type'), { schema: { minimum: 0, maximum: 7 } })

    t.equal(param(operation('get', '/api/log/search'), 'keyword')?.required, true, 'keyword is required on search')
    t.equal(param(operation('get', '/api/log/self/search'), 'keyword')?.required, true, 'keyword is required on self search')
    t.equal(param(operation('delete', '/api/log'), 'target_timestamp')?.required, true, 'target_timestamp is required')
    t.match(param(operation('delete', '/api/log'), 'target_timestamp'), { schema: { type: 'integer', minimum: 1 } })
    t.match(param(operation('get', '/api/log/stat'), 'type'), { schema: { default: 2 } })
    t.match(param(operation('get', '/api/log/self/stat'), 'type'), { schema: { default: 2 } })

    // The key of /api/log/token: a query parameter a generated client can send, optional (it may
    // come as Authorization instead).
    const token = operation('get', '/api/log/token')
    const keyParam = param(token, 'key')
    t.match(keyParam, { in: 'query', schema: { type: 'string' } }, 'the key query parameter is documented')
    t.not(keyParam?.required, true, 'key is optional (it may come as Authorization)')
    t.strictSame(token?.security, [{ apiKeyHeader: [] }, {}], 'the header scheme, or the parameter')
  })

  t.test('responses: 200 and the error statuses, errors in the envelope', async (t) => {
    for (const r of routes) {
      const op = operation(r.method, r.path)
      const label = `${r.method.toUpperCase()} ${r.path}`
      t.ok(op?.responses?.['200'], `${label}: 200`)
      const ok = deref(op?.responses?.['200']?.content?.['application/json']?.schema)
      t.match(ok, { properties: { success: {}, message: { type: 'string' } } }, `${label}: 200 is the envelope`)
      for (const status of r.errors) {
        const error = deref(op?.responses?.[status]?.content?.['application/json']?.schema)
        t.match(error, { properties: { success: {}, message: { type: 'string' } } }, `${label}: ${status} in the envelope`)
      }
    }
  })

  t.test('the stat answer is quota, rpm and tpm', async (t) => {
    for (const path of ['/api/log/stat', '/api/log/self/stat']) {
      t.match(dataSchema(operation('get', path)), { properties: { quota: { type: 'integer' }, rpm: { type: 'integer' }, tpm: { type: 'integer' } } }, path)
    }
  })

  t.test('admin items carry channel_name; user items never carry channel or ip', async (t) => {
    const adminItems = [
      deref(dataSchema(operation('get', '/api/log'))?.properties?.items?.items),
      deref(dataSchema(operation('get', '/api/log/search'))?.items)
    ]
    for (const item of adminItems) {
      const props = Object.keys(item?.properties ?? {})
      for (const field of ['id', 'created_at', 'username', 'channel_id', 'channel_name', 'ip', 'other', 'request_id', 'group']) {
        t.ok(props.includes(field), `admin item has ${field}`)
      }
    }

    const userItems = [
      deref(dataSchema(operation('get', '/api/log/self'))?.properties?.items?.items),
      deref(dataSchema(operation('get', '/api/log/self/search'))?.items),
      deref(dataSchema(operation('get', '/api/log/token'))?.items)
    ]
    for (const item of userItems) {
      const props = Object.keys(item?.properties ?? {})
      for (const field of ['id', 'user_id', 'created_at', 'type', 'content', 'token_name', 'model_name', 'quota', 'prompt_tokens', 'completion_tokens', 'use_time', 'is_stream', 'group', 'request_id']) {
        t.ok(props.includes(field), `user item has ${field}`)
      }
      for (const field of ['channel_id', 'channel_name', 'ip', 'other']) {
        t.notOk(props.includes(field), `user item lacks ${field}`)
      }
    }
  })
})

t.test('GET /healthz answers 200 while the database is up', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ url: '/healthz' })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { success: true, message: '' })
  t.equal(res.json().success, true)
  t.notOk('access-control-allow-origin' in res.headers, 'no CORS headers')
})
