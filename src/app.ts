import type { Server } from 'node:http'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import Fastify, { type FastifyHttpOptions, type FastifyServerOptions, type FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { parseDuration, parseTrustProxy, type Config } from './config.js'
import { clientErrorHandler, expectationFailed, frameworkErrors, setErrorHandlers } from './error-handler.js'
import { BadParameterError, BadRequestError, RateLimitedError } from './errors.js'
import { INVALID_PARAM, parseQueryString, type ParsedQuery } from './lib/querystring.js'
import { REQUEST_ID_HEADER, requestIdGenerator } from './lib/request-id.js'
import { validatorCompiler } from './lib/validator.js'
import authPlugin from './plugins/auth.js'
import redisPlugin from './plugins/redis.js'
import dbPlugin from './plugins/db.js'
import { parseReadUrls } from './db/replicas.js'
import docsPlugin from './plugins/docs.js'
import maintenancePlugin from './plugins/maintenance.js'
import metricsPlugin from './plugins/metrics.js'
import openapiPlugin from './plugins/openapi.js'
import pressurePlugin from './plugins/pressure.js'
import healthRoutes from './routes/health.js'
import logRoutes from './routes/log/index.js'
import metricsRoutes from './routes/metrics.js'
import { tokenPreflightOperation } from './routes/log/token.js'
import { ErrorResponseSchema } from './schemas/common.js'
import { IngestedCountResponseSchema, IngestRowSchema } from './schemas/ingest.js'
import { AdminItemSchema, RESPONSE_SCHEMAS, UserItemSchema } from './schemas/log.js'

export type AppConfig = Config & { DATABASE_URL: string }

/** A parameter name the log may show: letters, digits and underscores, as every one of ours. */
const PLAIN_NAME = /^[A-Za-z0-9_]{1,64}$/

/**
 * The request URL as logged: the `key` parameter of /api/log/token is an API key, and so may be
 * anything whose name is not plainly something else (`key+=`, `key%3Dsk-…`, broken encoding).
 */
export function redactUrl (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const pairs = url.slice(q + 1).split('&').map((pair) => {
    if (pair === '') return pair
    const eq = pair.indexOf('=')
    let name: string
    try {
      name = decodeURIComponent(eq === -1 ? pair : pair.slice(0, eq))
    } catch {
      return '[redacted]'
    }
    if (!PLAIN_NAME.test(name)) return '[redacted]'
    return name.toLowerCase() === 'key' ? 'key=[redacted]' : pair
  })
  return `${url.slice(0, q)}?${pairs.join('&')}`
}

/** pg errors carry their client (connection parameters and all): log only what helps. */
export function serializeError (err: Error & { code?: unknown }) {
  return { type: err.name, message: err.message, code: err.code, stack: err.stack ?? '' }
}

/** LOG_FORMAT's auto: pretty for a person at a terminal, JSON for everything that reads logs. */
export function prettyLogs (format: Config['LOG_FORMAT'], nodeEnv: string | undefined, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY && nodeEnv !== 'production')
}

/**
 * Authorization and New-Api-User are never logged (the request serializer logs no headers); the
 * URL is logged without the API key. Tests add a `stream` to read what would be written.
 */
export function loggerOptions (level: string, pretty = false) {
  return {
    level,
    // pino-pretty formats in a worker thread, off the request path.
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
    serializers: {
      req (request: FastifyRequest) {
        return { method: request.method, url: redactUrl(request.url), remoteAddress: request.ip }
      },
      err: serializeError
    }
  }
}

// `https` (server.ts, from TLS_CERT_FILE/TLS_KEY_FILE) makes the server an https.Server; the app's
// type still says http.Server, whose API the app uses the same way.
export async function buildApp (config: AppConfig, overrides: FastifyHttpOptions<Server> & { https?: HttpsServerOptions } = {}) {
  const trustProxy = parseTrustProxy(config.TRUST_PROXY)
  const app = Fastify({
    logger: loggerOptions(config.LOG_LEVEL, prettyLogs(config.LOG_FORMAT, config.NODE_ENV, process.stdout.isTTY === true)),
    // proxy-addr takes a hop count too; Fastify's types only lack the number form.
    trustProxy: trustProxy as FastifyServerOptions['trustProxy'],
    // Every log line of a request carries its id (reqId).
    requestIdHeader: false,
    // Failures below the routes answer the envelope too.
    clientErrorHandler,
    frameworkErrors,
    // Node would answer a missing Host with an empty 400; the hook below answers the envelope.
    http: { requireHostHeader: false },
    genReqId: requestIdGenerator(trustProxy),
    routerOptions: {
      ignoreTrailingSlash: true,
      querystringParser: parseQueryString
    },
    ...overrides,
    ...(overrides.https === undefined ? {} : { https: { requireHostHeader: false, ...overrides.https } })
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.server.on('checkExpectation', expectationFailed)
  app.setValidatorCompiler(validatorCompiler)
  setErrorHandlers(app)
  app.addSchema(ErrorResponseSchema)
  for (const schema of [UserItemSchema, AdminItemSchema, IngestRowSchema, IngestedCountResponseSchema, ...RESPONSE_SCHEMAS]) app.addSchema(schema)

  // First of all hooks, so that every answer carries it, errors and early refusals included.
  app.addHook('onRequest', async function echoRequestId (request, reply) {
    reply.header(REQUEST_ID_HEADER, request.id)
  })

  // HTTP/1.1 requires Host (HTTP/1.0 has none to send).
  app.addHook('onRequest', async function requireHost (request) {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) throw new BadRequestError('the Host header is required')
  })

  // A NUL byte or broken UTF-8 in any query parameter is the client's mistake: 400, before auth.
  app.addHook('onRequest', async function rejectMalformedQuery (request) {
    const invalid = (request.query as ParsedQuery)[INVALID_PARAM]
    if (invalid !== undefined) throw new BadParameterError(`query parameter ${invalid.name} ${invalid.reason}`)
  })

  await app.register(openapiPlugin, {
    publicUrl: config.PUBLIC_URL ?? `${overrides.https === undefined ? 'http' : 'https'}://${config.HOST}:${config.PORT}`,
    extraOperations: { '/api/log/token': { options: tokenPreflightOperation } }
  })
  await app.register(docsPlugin)

  // Before the rate limit: with REDIS_URL its counts live in Redis, shared by every instance (and
  // every WORKERS process), so a client meets one limit whichever instance answers it.
  await app.register(redisPlugin, { url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS })
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after),
    ...(app.redis === null
      ? {}
      : {
          redis: app.redis,
          nameSpace: `${config.REDIS_KEY_PREFIX}rate-limit:`,
          // While Redis is away (a failed command, the 250 ms timeout) a request is let through
          // rather than answered 5xx: an outage lifts the limit, it never closes the route.
          skipOnError: true
        })
  })

  await app.register(dbPlugin, {
    connectionString: config.DATABASE_URL,
    poolMax: config.DB_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    preparedStatements: config.DB_PREPARED_STATEMENTS,
    readConnectionStrings: parseReadUrls(config.DATABASE_READ_URL),
    readMaxLagMs: config.READ_MAX_LAG_MS,
    readLagCheckIntervalMs: config.READ_LAG_CHECK_INTERVAL_MS
  })
  await app.register(authPlugin, { cacheTtlMs: config.AUTH_CACHE_TTL_MS, failureLimit: config.AUTH_FAILURE_LIMIT, failureWindowMs: config.AUTH_FAILURE_WINDOW_MS })
  await app.register(maintenancePlugin, {
    foldIntervalMs: config.STAT_FOLD_INTERVAL_MS,
    purge: { batchSize: config.PURGE_BATCH_SIZE, unitMaxRows: config.PURGE_UNIT_MAX_ROWS },
    retentionDays: config.LOG_RETENTION_DAYS,
    retentionIntervalMs: parseDuration(config.LOG_RETENTION_INTERVAL)
  })
  // Once the service is closing, each answer ends its connection: a keep-alive socket that went
  // idle after close began would otherwise hold the server open until the grace period ran out.
  app.addHook('onSend', async function closeConnectionsWhileClosing (_request, reply) {
    if (app.maintenance.closing.aborted) reply.header('connection', 'close')
  })

  await app.register(pressurePlugin, {
    maxEventLoopDelayMs: config.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
    maxEventLoopUtilization: config.PRESSURE_MAX_EVENT_LOOP_UTILIZATION
  })
  await app.register(metricsPlugin)

  await app.register(healthRoutes, { connectionString: config.DATABASE_URL, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS })
  await app.register(metricsRoutes, { token: config.METRICS_TOKEN })
  await app.register(logRoutes, {
    prefix: '/api/log',
    exportMaxRows: config.EXPORT_MAX_ROWS,
    searchScan: { chunkRows: config.SEARCH_SCAN_CHUNK_ROWS, budgetMs: config.SEARCH_SCAN_BUDGET_MS },
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
