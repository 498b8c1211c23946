import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { prepared } from '../db/plan.js'
import { Envelope, errorResponses, ok } from '../schemas/common.js'
import { descriptions } from './log/descriptions.js'

const HealthSchema = Envelope(Type.Object({ status: Type.Literal('ok') }), { description: 'The service and its database answer', examples: [{ success: true, message: '', data: { status: 'ok' } }] })

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', {
    schema: {
      operationId: 'healthz',
      description: descriptions.healthz,
      security: [],
      summary: 'Answers 200 while the service is up and its database answers',
      tags: ['ops'],
      response: { 200: HealthSchema, ...errorResponses(400, 500, 503) }
    },
    config: { failureMessage: 'database unavailable' },
    logLevel: 'warn'
  }, async () => {
    await sql`select 1`.withPlugin(prepared('healthz')).execute(app.db)
    return ok({ status: 'ok' as const })
  })
}

export default healthRoutes
