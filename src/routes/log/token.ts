import cors from '@fastify/cors'
import { BadRequestError } from '../../errors.js'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, ok, rateLimitHeaders, ref } from '../../schemas/common.js'
import { UserLogListResponseSchema } from '../../schemas/log.js'
import { listUserLogs } from '../../queries/logs/page.js'
import { descriptions } from './descriptions.js'
import { toPage } from './params.js'
import { apiKeySecurity } from './shared.js'

const TokenLogsQuerySchema = Type.Object({
  key: Type.Optional(Type.String({ maxLength: 1024, description: 'the API key (a leading sk- is stripped); prefer the Authorization header, which keeps it out of access logs' })),
  p: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'page, 1-based' })),
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
})

// Sent on every answer of this route, to any origin.
const corsHeaders = {
  'Access-Control-Allow-Origin': Type.String({ description: 'always *: any page may read a key\'s logs with the key' }),
  'Access-Control-Expose-Headers': Type.String({ description: 'Retry-After and the X-RateLimit-* headers, readable by the page' })
}

/** The CORS of this route, as @fastify/cors is told it and as the document describes the preflight. */
export const TOKEN_CORS = {
  origin: '*',
  methods: ['GET', 'OPTIONS'],
  allowedHeaders: ['Authorization', 'Content-Type'],
  exposedHeaders: ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'],
  maxAge: 600
}

/**
 * The preflight as an OpenAPI operation. @fastify/cors answers it (its route is hidden from the
 * document), so the operation is added to the document by the openapi plugin, from TOKEN_CORS.
 */
export const tokenPreflightOperation = {
  operationId: 'preflightTokenLogs',
  summary: 'CORS preflight of the token route (sent by browsers)',
  description: 'What a browser sends before a cross-origin GET /api/log/token with an Authorization header. Answers 204 with the ' +
    `CORS headers: any origin, methods ${TOKEN_CORS.methods.join(', ')}, request headers ${TOKEN_CORS.allowedHeaders.join(', ')}, cached for ` +
    `${TOKEN_CORS.maxAge} s. No credentials; not rate limited.`,
  tags: ['token'],
  security: [],
  parameters: [
    { name: 'Origin', in: 'header', required: true, schema: { type: 'string' }, description: 'the page\'s origin', example: 'https://status.example.com' },
    { name: 'Access-Control-Request-Method', in: 'header', required: true, schema: { type: 'string', enum: ['GET'] }, description: 'the method the page will use' },
    { name: 'Access-Control-Request-Headers', in: 'header', required: false, schema: { type: 'string' }, description: 'the headers the page will send', example: 'authorization' }
  ],
  responses: {
    204: {
      description: 'Preflight accepted',
      headers: {
        'Access-Control-Allow-Origin': { schema: { type: 'string', enum: [TOKEN_CORS.origin] }, description: 'any origin' },
        'Access-Control-Allow-Methods': { schema: { type: 'string', example: TOKEN_CORS.methods.join(', ') }, description: 'the methods allowed' },
        'Access-Control-Allow-Headers': { schema: { type: 'string', example: TOKEN_CORS.allowedHeaders.join(', ') }, description: 'the request headers allowed' },
        'Access-Control-Max-Age': { schema: { type: 'integer', example: TOKEN_CORS.maxAge }, description: 'seconds a browser may cache this answer' }
      }
    },
    400: {
      description: 'Not a preflight: Origin or Access-Control-Request-Method missing (answered by the CORS plugin in plain text)',
      content: { 'text/plain': { schema: { type: 'string', example: 'Invalid Preflight Request' } } }
    }
  }
}

export interface TokenRoutesOptions {
  rateLimitMax: number
  rateLimitWindowMs: number
}

/**
 * GET /api/log/token: the one public, cross-origin route. CORS is registered inside this scope
 * only, so no other route sends CORS headers; the rate limit runs before the key is looked up.
 */
const tokenRoutes: FastifyPluginAsyncTypebox<TokenRoutesOptions> = async (app, opts) => {
  // @fastify/cors answers an incomplete preflight with plain text; this hook, registered first,
  // answers it with the envelope.
  app.addHook('onRequest', async function completePreflight (request) {
    if (request.method === 'OPTIONS' && (request.headers.origin === undefined || request.headers['access-control-request-method'] === undefined)) {
      throw new BadRequestError('a CORS preflight needs the Origin and Access-Control-Request-Method headers')
    }
  })
  await app.register(cors, TOKEN_CORS)

  app.get('/', {
    schema: {
      operationId: 'listTokenLogs',
      description: descriptions.listTokenLogs,
      summary: 'Logs of one API key, newest first (public, CORS, rate limited per client IP)',
      tags: ['token'],
      security: apiKeySecurity,
      querystring: TokenLogsQuerySchema,
      response: { 200: ref(UserLogListResponseSchema, { description: 'Log rows of the key, newest first', headers: { ...rateLimitHeaders(), ...corsHeaders } }), ...errorResponses(400, 401, 429, 500, 503) }
    },
    config: {
      failureMessage: '获取日志失败',
      rateLimit: { max: opts.rateLimitMax, timeWindow: opts.rateLimitWindowMs }
    },
    preValidation: async (request, reply) => { await app.authenticateApiKey(request, reply) }
  }, async (request) => {
    const owner = request.apiKey
    if (owner === null) throw new Error('route reached without an API key')
    return ok(await listUserLogs(app.readDb, { tokenId: owner.tokenId }, toPage(request.query, 100)))
  })
}

export default tokenRoutes
