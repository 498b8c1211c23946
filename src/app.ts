import type { Server } from 'node:http'
import Fastify, { type FastifyHttpOptions, type FastifyServerOptions, type FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { parseTrustProxy, type Config } from './config.js'
import { setErrorHandlers } from './error-handler.js'
import { BadParameterError, RateLimitedError } from './errors.js'
import { INVALID_PARAM, parseQueryString, type ParsedQuery } from './lib/querystring.js'
import { validatorCompiler } from './lib/validator.js'
import authPlugin from './plugins/auth.js'
import dbPlugin from './plugins/db.js'
import rollupPlugin from './plugins/rollup.js'
import logRoutes from './routes/log/index.js'
import { Envelope, errorResponses, ErrorResponseSchema } from './schemas/common.js'
import { AdminItemSchema, UserItemSchema } from './schemas/log.js'
import { ok } from './routes/log/params.js'

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
  app.addSchema(UserItemSchema)
  app.addSchema(AdminItemSchema)

  // A NUL byte or broken UTF-8 in any query parameter is the client's mistake: 400, before auth.
  app.addHook('onRequest', async function rejectMalformedQuery (request) {
    const invalid = (request.query as ParsedQuery)[INVALID_PARAM]
    if (invalid !== undefined) throw new BadParameterError(`query parameter ${invalid.name} ${invalid.reason}`)
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'LLM gateway log service',
        description: 'The /api/log routes of an LLM API gateway (new-api compatible). Every response is the envelope {success, message, data?}.',
        version: '1.0.0'
      },
      tags: [
        { name: 'admin', description: 'role admin (10) or root (100)' },
        { name: 'user', description: 'any enabled user, own rows only' },
        { name: 'token', description: 'public, by API key, CORS' },
        { name: 'ops', description: 'operations' }
      ],
      components: {
        securitySchemes: {
          accessToken: { type: 'http', scheme: 'bearer', description: "the user's access token (users.access_token); a bare token also works" },
          newApiUser: { type: 'apiKey', in: 'header', name: 'New-Api-User', description: 'the id of the user the access token belongs to' },
          apiKeyHeader: { type: 'http', scheme: 'bearer', description: 'an API key (sk-…); preferred over the query parameter' },
          apiKeyQuery: { type: 'apiKey', in: 'query', name: 'key', description: 'an API key (sk-…)' }
        }
      }
    },
    // Name shared components after their $id, so generated clients get ErrorResponse, UserLogItem…
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) }
  })

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
  await app.register(rollupPlugin, { intervalMs: config.STAT_FOLD_INTERVAL_MS })

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  app.get('/healthz', {
    schema: {
      operationId: 'healthz',
      summary: 'Answers 200 while the service is up and its database answers',
      tags: ['ops'],
      response: { 200: Envelope(Type.Object({ status: Type.Literal('ok') })), ...errorResponses(500, 503) }
    },
    config: { failureMessage: 'database unavailable' },
    logLevel: 'warn'
  }, async () => {
    await sql`select 1`.execute(app.db)
    return ok({ status: 'ok' as const })
  })

  await app.register(logRoutes, {
    prefix: '/api/log',
    purgeBatchSize: config.PURGE_BATCH_SIZE,
    purgeUnitMaxRows: config.PURGE_UNIT_MAX_ROWS,
    tokenRateLimitMax: config.TOKEN_RATE_LIMIT_MAX,
    tokenRateLimitWindowMs: config.TOKEN_RATE_LIMIT_WINDOW_MS
  })

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
