import type { FastifyPluginAsync } from 'fastify'
import { Role } from '../../domain.js'
import adminRoutes from './admin.js'
import selfRoutes from './self.js'
import tokenRoutes from './token.js'

export interface LogRoutesOptions {
  purgeBatchSize: number
  purgeUnitMaxRows: number
  tokenRateLimitMax: number
  tokenRateLimitWindowMs: number
}

/** /api/log: one encapsulated scope per audience, each with its own auth hook. */
const logRoutes: FastifyPluginAsync<LogRoutesOptions> = async (app, opts) => {
  await app.register(async function userScope (scope) {
    scope.addHook('onRequest', scope.requireRole(Role.user))
    await scope.register(selfRoutes)
  })

  await app.register(async function adminScope (scope) {
    scope.addHook('onRequest', scope.requireRole(Role.admin))
    await scope.register(adminRoutes, { purgeBatchSize: opts.purgeBatchSize, purgeUnitMaxRows: opts.purgeUnitMaxRows })
  })

  await app.register(tokenRoutes, {
    prefix: '/token',
    rateLimitMax: opts.tokenRateLimitMax,
    rateLimitWindowMs: opts.tokenRateLimitWindowMs
  })
}

export default logRoutes
