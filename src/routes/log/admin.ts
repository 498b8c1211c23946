import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { DEFAULT_STAT_TYPE } from '../../domain.js'
import { errorResponses, ok, ref } from '../../schemas/common.js'
import {
  AdminLogListResponseSchema, AdminLogPageResponseSchema, adminFilterProps, commonFilterProps, DeletedCountResponseSchema, KeywordSchema,
  pageProps, requestIdProp, StatTypeFilterSchema, TypeFilterSchema
} from '../../schemas/log.js'
import { StatResponseSchema } from '../../schemas/stat.js'
import { adminPage } from '../../queries/logs/page.js'
import { searchAdminLogs } from '../../queries/logs/search.js'
import { statLogs } from '../../queries/logs/stat.js'
import { pageWithTotal } from '../../queries/logs/total.js'
import { PurgeStoppedError } from '../../queries/purge.js'
import { PurgeRunningError, ShuttingDownError, TargetTimestampRequiredError } from '../../errors.js'
import { descriptions } from './descriptions.js'
import { pageData, toFilter, toKeyword, toPage } from './params.js'
import { SEARCH_LIMIT, searchAnswer, searchHeaders, userSecurity, type SearchRoutesOptions } from './shared.js'

const ListQuerySchema = Type.Object({
  ...pageProps,
  type: Type.Optional(TypeFilterSchema),
  ...commonFilterProps,
  ...adminFilterProps,
  ...requestIdProp
})

const StatQuerySchema = Type.Object({
  type: Type.Optional(StatTypeFilterSchema),
  ...commonFilterProps,
  ...adminFilterProps
})

const SearchQuerySchema = Type.Object({ keyword: KeywordSchema })

const PurgeQuerySchema = Type.Object({
  target_timestamp: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'unix seconds; rows with created_at strictly below it are deleted' })
})

// The admin scope's four routes: declarations read one at a time, each handler a few lines.
const adminRoutes: FastifyPluginAsyncTypebox<SearchRoutesOptions> = async (app, opts) => {
  // The contract's path is /api/log/ (ignoreTrailingSlash still answers /api/log).
  app.get('/', {
    prefixTrailingSlash: 'slash',
    schema: {
      operationId: 'listLogs',
      description: descriptions.listLogs,
      summary: 'List every log row of the site, newest first',
      tags: ['admin'],
      security: userSecurity,
      querystring: ListQuerySchema,
      response: { 200: ref(AdminLogPageResponseSchema), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '获取日志失败' }
  }, async (request) => {
    const filter = toFilter(request.query)
    const page = toPage(request.query, 20)
    const { items, total } = await pageWithTotal(app.readDb, filter, page, adminPage)
    return ok(pageData(items, total, page))
  })

  app.get('/stat', {
    schema: {
      operationId: 'getLogStat',
      description: descriptions.getLogStat,
      summary: 'Quota over a window and rpm/tpm over the last 60 s, over every log row',
      tags: ['admin'],
      security: userSecurity,
      querystring: StatQuerySchema,
      response: { 200: ref(StatResponseSchema), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '获取统计信息失败' }
  }, async (request) => {
    const filter = { ...toFilter(request.query), type: request.query.type ?? DEFAULT_STAT_TYPE }
    return ok(await statLogs(app.readDb, filter, Math.floor(Date.now() / 1000)))
  })

  app.get('/search', {
    schema: {
      operationId: 'searchLogs',
      description: descriptions.searchLogs,
      summary: 'The 100 newest logs whose content contains the keyword (or whose type equals it)',
      tags: ['admin'],
      security: userSecurity,
      querystring: SearchQuerySchema,
      response: { 200: ref(AdminLogListResponseSchema, { headers: searchHeaders }), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '搜索日志失败' }
  }, async (request, reply) => {
    const keyword = toKeyword(request.query.keyword)
    return ok(searchAnswer(reply, await searchAdminLogs(app.readDb, { keyword, limit: SEARCH_LIMIT, scan: opts.searchScan })))
  })

  app.delete('/', {
    prefixTrailingSlash: 'slash',
    schema: {
      operationId: 'deleteHistoryLogs',
      description: descriptions.deleteHistoryLogs,
      summary: 'Delete every log row older than target_timestamp, in batches; answers the number deleted',
      tags: ['admin'],
      security: userSecurity,
      querystring: PurgeQuerySchema,
      response: { 200: ref(DeletedCountResponseSchema), ...errorResponses(400, 401, 403, 409, 429, 500, 503) }
    },
    // Whatever is wrong with the parameter, the contract's message is this one.
    schemaErrorFormatter: () => new TargetTimestampRequiredError(),
    config: { failureMessage: '删除日志失败' }
  }, async (request) => {
    // Not tied to the request: a purge under way finishes even if its client goes away. Shutdown
    // stops it at a batch boundary (503, run it again to finish).
    const before = request.query.target_timestamp
    const deleted = await app.maintenance.purge(app.db, before, {
      source: 'api',
      onBatch: (n, total) => { request.log.debug({ deleted: n, total }, 'purge batch') }
    }).catch((err: unknown) => {
      if (!(err instanceof PurgeStoppedError)) throw err
      request.log.warn({ deleted: err.deleted, before }, 'history purge stopped by shutdown')
      throw new ShuttingDownError(err.message)
    })
    if (deleted === null) throw new PurgeRunningError()
    request.log.info({ deleted, before }, 'history purged')
    return ok(deleted)
  })
}

export default adminRoutes
