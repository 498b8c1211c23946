import { createHash, timingSafeEqual } from 'node:crypto'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { UnauthorizedError } from '../errors.js'
import { credentialFromHeader } from '../plugins/auth.js'
import { errorResponses } from '../schemas/common.js'
import { descriptions } from './log/descriptions.js'

// GET /metrics: the app's Prometheus registry (plugins/metrics.ts) in the text exposition format.

export interface MetricsRoutesOptions {
  /** when set, a scrape must send it as a bearer token */
  token?: string
}

const digest = (s: string) => createHash('sha256').update(s).digest()

const metricsExample = [
  '# HELP log_service_http_requests_total HTTP requests answered, by operationId and status',
  '# TYPE log_service_http_requests_total counter',
  'log_service_http_requests_total{operation="listSelfLogs",status="200"} 1024',
  '# HELP log_service_stat_fold_backlog_rows Stat delta rows waiting to be folded into the rollups; -1 when not read within 500 ms',
  '# TYPE log_service_stat_fold_backlog_rows gauge',
  'log_service_stat_fold_backlog_rows 0',
  ''
].join('\n')

const metricsRoutes: FastifyPluginAsyncTypebox<MetricsRoutesOptions> = async (app, opts) => {
  const tokenDigest = opts.token === undefined ? null : digest(opts.token)

  app.get('/metrics', {
    schema: {
      operationId: 'metrics',
      description: descriptions.metrics,
      // The bearer when METRICS_TOKEN is set, nothing otherwise.
      security: [{ metricsToken: [] }, {}],
      summary: 'Prometheus metrics (text exposition format)',
      tags: ['ops'],
      response: {
        200: {
          description: 'The metrics, in the Prometheus text format 0.0.4',
          content: { 'text/plain': { schema: Type.String({ description: 'HELP and TYPE lines, then one sample per line' }), example: metricsExample } }
        },
        ...errorResponses(401)
      }
    },
    config: { shedUnderPressure: false },
    logLevel: 'warn',
    // Compared as digests in constant time, as the ingest key is.
    onRequest: async function authenticateScrape (request, reply) {
      if (tokenDigest === null) return
      await app.authFailures.refuse(request, reply)
      const credential = credentialFromHeader(request.headers.authorization)
      if (credential === undefined || !timingSafeEqual(digest(credential), tokenDigest)) {
        if (credential !== undefined) await app.authFailures.count(request)
        throw new UnauthorizedError('Unauthorized: /metrics needs Authorization: Bearer <METRICS_TOKEN>')
      }
    }
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType)
    return await app.metrics.registry.metrics()
  })
}

export default metricsRoutes
