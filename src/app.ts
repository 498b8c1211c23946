import type { Server } from 'node:http'
import Fastify, { type FastifyHttpOptions, type FastifyServerOptions, type FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { parseTrustProxy, type Config } from './config.js'
import { setErrorHandlers } from './error-handler.js'
import { BadParameterError, RateLimitedError } from './errors.js'
import { INVALID_PARAM, parseQueryString, type ParsedQuery } from './lib/querystring.js'
import { validatorCompiler } from './lib/validator.js'
import authPlugin from './plugins/auth.js'
import dbPlugin from './plugins/db.js'
import docsPlugin from './plugins/docs.js'
import maintenancePlugin from './plugins/maintenance.js'
import openapiPlugin from './plugins/openapi.js'
import healthRoutes from './routes/health.js'
import logRoutes from './routes/log/index.js'
import { tokenPreflightOperation } from './routes/log/token.js'
import { ErrorResponseSchema } from './schemas/common.js'
import { IngestedCountResponseSchema, IngestRowSchema } from './schemas/ingest.js'
import { AdminItemSchema, RESPONSE_SCHEMAS, UserItemSchema } from './schemas/log.js'

export type AppConfig = Config & { DATABASE_URL: string }

/** The request URL as logged: the `key` parameter of /api/log/token is an API key. */
export function redactUrl (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const pairs = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=')
    let name = eq === -1 ? pair : pair.slice(0, eq)
    try { name = decodeURIComponent(name) } catch {}
    return name.trim().toLowerCase() === 'key' ? 'key=[redacted]' : pair
  })
  return `${url.slice(0, q)}?${pairs.join('&')}`
}

/** pg errors carry their client (connection parameters and all): log only what helps. */
export function serializeError (err: Error & { code?: unknown }) {
  return { type: err.name, message: err.message, code: err.code, stack: err.stack ?? '' }
}

/**
 * Authorization and New-Api-User are never logged (the request serializer logs no headers); the
 * URL is logged without the API key. Tests add a `stream` to read what would be written.
 */
export function loggerOptions (level: string) {
  return {
    level,
    serializers: {
      req (request: FastifyRequest) {
        return { method: request.method, url: redactUrl(request.url), remoteAddress: request.ip }
      },
      err: serializeError
    }
  }
}

export async function buildApp (config: AppConfig, overrides: FastifyHttpOptions<Server> = {}) {
  const app = Fastify({
    logger: loggerOptions(config.LOG_LEVEL),
    // proxy-addr takes a hop count too; Fastify's types only lack the number form.
    trustProxy: parseTrustProxy(config.TRUST_PROXY) as FastifyServerOptions['trustProxy'],
    routerOptions: {
      ignoreTrailingSlash: true,
      querystringParser: parseQueryString
    },
    ...overrides
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  setErrorHandlers(app)
  app.addSchema(ErrorResponseSchema)
  for (const schema of [UserItemSchema, AdminItemSchema, IngestRowSchema, IngestedCountResponseSchema, ...RESPONSE_SCHEMAS]) app.addSchema(schema)

  // A NUL byte or broken UTF-8 in any query parameter is the client's mistake: 400, before auth.
  app.addHook('onRequest', async function rejectMalformedQuery (request) {
    const invalid = (request.query as ParsedQuery)[INVALID_PARAM]
    if (invalid !== undefined) throw new BadParameterError(`query parameter ${invalid.name} ${invalid.reason}`)
  })

  await app.register(openapiPlugin, {
    publicUrl: config.PUBLIC_URL ?? `http://${config.HOST}:${config.PORT}`,
    extraOperations: { '/api/log/token': { options: tokenPreflightOperation } }
  })
  await app.register(docsPlugin)

  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after)
  })

  await app.register(dbPlugin, {
    connectionString: config.DATABASE_URL,
    poolMax: config.DB_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    preparedStatements: config.DB_PREPARED_STATEMENTS
  })
  await app.register(authPlugin, { cacheTtlMs: config.AUTH_CACHE_TTL_MS })
  await app.register(maintenancePlugin, { foldIntervalMs: config.STAT_FOLD_INTERVAL_MS })

  await app.register(healthRoutes)
  await app.register(logRoutes, {
    prefix: '/api/log',
    purgeBatchSize: config.PURGE_BATCH_SIZE,
    purgeUnitMaxRows: config.PURGE_UNIT_MAX_ROWS,
    exportMaxRows: config.EXPORT_MAX_ROWS,
    tokenRateLimitMax: config.TOKEN_RATE_LIMIT_MAX,
    tokenRateLimitWindowMs: config.TOKEN_RATE_LIMIT_WINDOW_MS,
    ingest: {
      ingestKey: config.INGEST_KEY,
      bodyLimit: config.INGEST_BODY_LIMIT,
      lineLimit: config.INGEST_LINE_LIMIT,
      maxBackfillBytes: config.INGEST_MAX_BYTES,
      chunkRows: config.INGEST_CHUNK_ROWS
    }
  })

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
