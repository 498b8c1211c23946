import type { FastifyPluginAsync } from 'fastify'
import { Role } from '../../domain.js'
import adminRoutes from './admin.js'
import exportRoutes from './export.js'
import ingestRoutes, { type IngestRoutesOptions } from './ingest.js'
import selfRoutes from './self.js'
import tokenRoutes from './token.js'
import type { ShortKeywordScan } from '../../queries/logs/search.js'

export interface LogRoutesOptions {
  exportMaxRows: number
  searchScan: ShortKeywordScan
  tokenRateLimitMax: number
  tokenRateLimitWindowMs: number
  ingest: IngestRoutesOptions
}

/** /api/log: one encapsulated scope per audience, each with its own auth hook. */
const logRoutes: FastifyPluginAsync<LogRoutesOptions> = async (app, opts) => {
  await app.register(async function userScope (scope) {
    scope.addHook('onRequest', scope.requireRole(Role.user))
    await scope.register(selfRoutes, { searchScan: opts.searchScan })
    await scope.register(exportRoutes, { audience: 'user', maxRows: opts.exportMaxRows })
  })

  await app.register(async function adminScope (scope) {
    scope.addHook('onRequest', scope.requireRole(Role.admin))
    await scope.register(adminRoutes, { searchScan: opts.searchScan })
    await scope.register(exportRoutes, { audience: 'admin', maxRows: opts.exportMaxRows })
  })

  // Its own scope: the ingest key is accepted here and nowhere else.
  await app.register(ingestRoutes, opts.ingest)

  await app.register(tokenRoutes, {
    prefix: '/token',
    rateLimitMax: opts.tokenRateLimitMax,
    rateLimitWindowMs: opts.tokenRateLimitWindowMs
  })
}

export default logRoutes
