import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { DEFAULT_STAT_TYPE } from '../../domain.js'
import { errorResponses, ok, ref } from '../../schemas/common.js'
import {
  commonFilterProps, KeywordSchema, pageProps, requestIdProp, StatTypeFilterSchema, TypeFilterSchema, UserLogListResponseSchema, UserLogPageResponseSchema
} from '../../schemas/log.js'
import { StatResponseSchema } from '../../schemas/stat.js'
import { userPage } from '../../queries/logs/page.js'
import { searchUserLogs } from '../../queries/logs/search.js'
import { statLogs } from '../../queries/logs/stat.js'
import { pageWithTotal } from '../../queries/logs/total.js'
import { descriptions } from './descriptions.js'
import { currentUser, pageData, toFilter, toKeyword, toPage } from './params.js'
import { SEARCH_LIMIT, searchAnswer, searchHeaders, userSecurity, type SearchRoutesOptions } from './shared.js'

// `username` and `channel` are not declared: unknown parameters are dropped by validation, so a
// user sees their own rows whatever the query says.
const SelfListQuerySchema = Type.Object({
  ...pageProps,
  type: Type.Optional(TypeFilterSchema),
  ...commonFilterProps,
  ...requestIdProp
})

const SelfStatQuerySchema = Type.Object({
  type: Type.Optional(StatTypeFilterSchema),
  ...commonFilterProps
})

const SelfSearchQuerySchema = Type.Object({ keyword: KeywordSchema })

const selfRoutes: FastifyPluginAsyncTypebox<SearchRoutesOptions> = async (app, opts) => {
  app.get('/self', {
    schema: {
      operationId: 'listSelfLogs',
      description: descriptions.listSelfLogs,
      summary: "List the caller's own logs, newest first",
      tags: ['user'],
      security: userSecurity,
      querystring: SelfListQuerySchema,
      response: { 200: ref(UserLogPageResponseSchema), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '获取日志失败' }
  }, async (request) => {
    const filter = { ...toFilter(request.query), userId: currentUser(request).id }
    const page = toPage(request.query, 20)
    const { items, total } = await pageWithTotal(app.readDb, filter, page, userPage)
    return ok(pageData(items, total, page))
  })

  app.get('/self/stat', {
    schema: {
      operationId: 'getSelfLogStat',
      description: descriptions.getSelfLogStat,
      summary: "Quota over a window and rpm/tpm over the last 60 s, of the caller's own logs",
      tags: ['user'],
      security: userSecurity,
      querystring: SelfStatQuerySchema,
      response: { 200: ref(StatResponseSchema), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '获取统计信息失败' }
  }, async (request) => {
    const filter = { ...toFilter(request.query), type: request.query.type ?? DEFAULT_STAT_TYPE, userId: currentUser(request).id }
    return ok(await statLogs(app.readDb, filter, Math.floor(Date.now() / 1000)))
  })

  app.get('/self/search', {
    schema: {
      operationId: 'searchSelfLogs',
      description: descriptions.searchSelfLogs,
      summary: "The 100 newest of the caller's logs whose content contains the keyword (or whose type equals it)",
      tags: ['user'],
      security: userSecurity,
      querystring: SelfSearchQuerySchema,
      response: { 200: ref(UserLogListResponseSchema, { headers: searchHeaders }), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '搜索日志失败' }
  }, async (request, reply) => {
    const keyword = toKeyword(request.query.keyword)
    return ok(searchAnswer(reply, await searchUserLogs(app.readDb, { keyword, userId: currentUser(request).id, limit: SEARCH_LIMIT, scan: opts.searchScan })))
  })
}

export default selfRoutes
