// The program an integrator writes against a client generated from openapi.json
// (openapi-typescript for the types, openapi-fetch for the calls): one call to every operation
// of the document, reading typed fields from typed answers, with no cast and no `any`.
// test/openapi/client.test.ts generates ./schema.d.ts beside a copy of this file, type-checks it
// under --strict and runs it against the real app. schema.d.ts is generated, never committed, so
// the project's tsconfig leaves this folder to that test.
import createClient from 'openapi-fetch'
import type { components, paths } from './schema.js'

type ErrorCode = components['schemas']['ErrorResponse']['code']

function env (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set`)
  return value
}

// A failed call says which operation, the status and the envelope's code, so a broken run reads
// as a sentence in the test's output.
function failed (operationId: string, response: Response, error: { code: ErrorCode, message: string }): Error {
  return new Error(`${operationId}: ${response.status} ${error.code} ${error.message}`)
}

const baseUrl = env('LOG_API_URL')
const apiKey = env('LOG_API_KEY')
// Stats count the rows from `since` on; the purge deletes the rows before it.
const since = Number(env('LOG_SINCE'))
const keyword = env('LOG_KEYWORD')

// The two security schemes of the user and admin routes: the access token and New-Api-User.
const admin = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${env('LOG_ADMIN_TOKEN')}`, 'New-Api-User': env('LOG_ADMIN_ID') }
})
const user = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${env('LOG_USER_TOKEN')}`, 'New-Api-User': env('LOG_USER_ID') }
})
const anonymous = createClient<paths>({ baseUrl })

const health = await anonymous.GET('/healthz')
if (health.error !== undefined) throw failed('healthz', health.response, health.error)

// Readiness says which check passed; metrics are text (no METRICS_TOKEN on this service).
const ready = await anonymous.GET('/readyz')
if (ready.error !== undefined) throw failed('readyz', ready.response, ready.error)
const metrics = await anonymous.GET('/metrics', { parseAs: 'text' })
if (metrics.error !== undefined) throw failed('metrics', metrics.response, metrics.error)

const selfPage = await user.GET('/api/log/self', { params: { query: { p: 1, page_size: 10, type: 2 } } })
if (selfPage.error !== undefined) throw failed('listSelfLogs', selfPage.response, selfPage.error)
const selfItems = selfPage.data.data.items

// The keyset page after the first row: next_cursor is a string until the last page.
const firstCursor = (await user.GET('/api/log/self', { params: { query: { page_size: 1 } } })).data?.data.next_cursor
const cursorPage = firstCursor === null || firstCursor === undefined
  ? undefined
  : await user.GET('/api/log/self', { params: { query: { page_size: 1, cursor: firstCursor } } })

const selfStat = await user.GET('/api/log/self/stat', { params: { query: { start_timestamp: since } } })
if (selfStat.error !== undefined) throw failed('getSelfLogStat', selfStat.response, selfStat.error)

const selfSearch = await user.GET('/api/log/self/search', { params: { query: { keyword } } })
if (selfSearch.error !== undefined) throw failed('searchSelfLogs', selfSearch.response, selfSearch.error)

const adminPage = await admin.GET('/api/log/', { params: { query: { page_size: 100 } } })
if (adminPage.error !== undefined) throw failed('listLogs', adminPage.response, adminPage.error)

const adminStat = await admin.GET('/api/log/stat', { params: { query: { type: 2, start_timestamp: since } } })
if (adminStat.error !== undefined) throw failed('getLogStat', adminStat.response, adminStat.error)

const adminSearch = await admin.GET('/api/log/search', { params: { query: { keyword } } })
if (adminSearch.error !== undefined) throw failed('searchLogs', adminSearch.response, adminSearch.error)

// The token route takes the key as its query parameter, or as a bearer token.
const byKey = await anonymous.GET('/api/log/token', { params: { query: { key: apiKey, page_size: 50 } } })
if (byKey.error !== undefined) throw failed('listTokenLogs', byKey.response, byKey.error)
const byBearer = await anonymous.GET('/api/log/token', { headers: { Authorization: `Bearer ${apiKey}` } })
if (byBearer.error !== undefined) throw failed('listTokenLogs', byBearer.response, byBearer.error)

// What a browser sends first; Origin and the requested method are the operation's header parameters.
const preflight = await anonymous.OPTIONS('/api/log/token', { params: { header: { Origin: 'https://status.example.com', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' } } })

// Errors come back typed too: the envelope, its code one of the document's enum.
const forbidden = await user.GET('/api/log/', {})
const unauthenticated = await anonymous.GET('/api/log/self', {})
const badParameter = await user.GET('/api/log/self', { params: { query: { page_size: 0 } } })
const errorCodes: Record<string, { status: number, code: ErrorCode | undefined }> = {
  forbidden: { status: forbidden.response.status, code: forbidden.error?.code },
  unauthenticated: { status: unauthenticated.response.status, code: unauthenticated.error?.code },
  badParameter: { status: badParameter.response.status, code: badParameter.error?.code }
}

// Exports are text, read as such (parseAs), with the filters of the lists.
const adminExport = await admin.GET('/api/log/export', { params: { query: { format: 'ndjson', start_timestamp: since } }, parseAs: 'text' })
if (adminExport.error !== undefined) throw failed('exportLogs', adminExport.response, adminExport.error)
const selfExport = await user.GET('/api/log/self/export', { params: { query: { format: 'csv' } }, parseAs: 'text' })
if (selfExport.error !== undefined) throw failed('exportSelfLogs', selfExport.response, selfExport.error)
const exportedIds = adminExport.data.split('\n').filter((line) => line !== '').map((line): unknown => JSON.parse(line))
  .map((row) => typeof row === 'object' && row !== null && 'id' in row ? row.id : null)

// Written after the reads above, so that they count only the seeded rows; created_at defaults to now.
const ingested = await admin.POST('/api/log/', { body: [{ user_id: Number(env('LOG_USER_ID')), type: 2, model_name: 'generated-client', quota: 5 }] })
if (ingested.error !== undefined) throw failed('ingestLogs', ingested.response, ingested.error)

// Last, as it deletes rows the reads above count.
const purge = await admin.DELETE('/api/log/', { params: { query: { target_timestamp: since } } })
if (purge.error !== undefined) throw failed('deleteHistoryLogs', purge.response, purge.error)

const report = {
  healthz: { status: health.response.status, health: health.data.data.status },
  readyz: { status: ready.response.status, database: ready.data.data.database, migrations: ready.data.data.migrations },
  metrics: {
    status: metrics.response.status,
    contentType: metrics.response.headers.get('Content-Type'),
    healthzCounted: metrics.data.split('\n').some((line) => line.startsWith('log_service_http_requests_total{operation="healthz",status="200"}'))
  },
  listSelfLogs: {
    status: selfPage.response.status,
    ids: selfItems.map((item) => item.id),
    firstContent: selfItems[0]?.content,
    total: selfPage.data.data.total,
    totalExact: selfPage.data.data.total_exact,
    cursorPageIds: cursorPage?.data?.data.items.map((item) => item.id)
  },
  getSelfLogStat: { status: selfStat.response.status, ...selfStat.data.data },
  searchSelfLogs: { status: selfSearch.response.status, contents: selfSearch.data.data.map((item) => item.content) },
  listLogs: {
    status: adminPage.response.status,
    ids: adminPage.data.data.items.map((item) => item.id),
    usernames: adminPage.data.data.items.map((item) => item.username),
    total: adminPage.data.data.total
  },
  getLogStat: { status: adminStat.response.status, ...adminStat.data.data },
  searchLogs: { status: adminSearch.response.status, ids: adminSearch.data.data.map((item) => item.id), ips: adminSearch.data.data.map((item) => item.ip) },
  listTokenLogs: {
    status: byKey.response.status,
    byKey: byKey.data.data.map((item) => item.id),
    byBearer: byBearer.data.data.map((item) => item.id),
    rateLimitRemaining: byBearer.response.headers.get('X-RateLimit-Remaining')
  },
  exportLogs: { status: adminExport.response.status, ids: exportedIds, disposition: adminExport.response.headers.get('Content-Disposition') },
  exportSelfLogs: { status: selfExport.response.status, header: selfExport.data.split('\r\n')[0], records: selfExport.data.split('\r\n').length - 2 },
  ingestLogs: { status: ingested.response.status, written: ingested.data.data },
  deleteHistoryLogs: { status: purge.response.status, deleted: purge.data.data },
  preflightTokenLogs: { status: preflight.response.status, allowOrigin: preflight.response.headers.get('Access-Control-Allow-Origin'), allowHeaders: preflight.response.headers.get('Access-Control-Allow-Headers') },
  errors: errorCodes
}

process.stdout.write(JSON.stringify(report) + '\n')
