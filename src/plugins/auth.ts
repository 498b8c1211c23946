import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler, preValidationAsyncHookHandler } from 'fastify'
import { credentialDigest, findTokenByKey, findUserByAccessToken, type ApiKeyOwner, type AuthUser } from '../queries/auth.js'
import { failureCounter } from '../lib/failure-counter.js'
import { UserStatus } from '../domain.js'
import { BadParameterError, ForbiddenError, RateLimitedError, TokenInvalidError, UnauthorizedError } from '../errors.js'

export interface AuthPluginOptions {
  /** How long a user or key lookup is trusted; the contract allows a few seconds. 0 disables the cache. */
  cacheTtlMs: number
  /** failed authentications per client IP and window before it is refused; 0 = no limit */
  failureLimit: number
  failureWindowMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: access token + New-Api-User, then status, then role. */
    requireRole: (minRole: number) => onRequestAsyncHookHandler
    /** preValidation hook for /api/log/token: the API key from the header or `key`. */
    authenticateApiKey: preValidationAsyncHookHandler
    /** For every credential check, the ones in this plugin and the ingest key's and metrics token's. */
    authFailures: {
      /** 429 with Retry-After when the client is past its failed authentications */
      refuse: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
      count: (request: FastifyRequest) => Promise<void>
    }
  }
  interface FastifyRequest {
    user: AuthUser | null
    apiKey: ApiKeyOwner | null
  }
}

// Longest credential worth a lookup: users.access_token is varchar(64), tokens.key varchar(128).
const MAX_ACCESS_TOKEN = 64
const MAX_API_KEY = 128

/** `Bearer x`, `bearer x` or a bare `x`. */
export function credentialFromHeader (header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const match = /^\s*bearer\s+(.*)$/i.exec(header)
  const value = (match ? match[1]! : header).trim()
  return value === '' ? undefined : value
}

function parseUserIdHeader (header: string | string[] | undefined): number | 'missing' | 'malformed' {
  if (header === undefined || Array.isArray(header)) return header === undefined ? 'missing' : 'malformed'
  if (header.trim() === '') return 'missing'
  // The seed's example sends `Bearer <id>`; both forms are accepted.
  const match = /^\s*(?:bearer\s+)?([0-9]{1,10})\s*$/i.exec(header)
  return match ? Number(match[1]) : 'malformed'
}

export default fp<AuthPluginOptions>(async function authPlugin (app, opts) {
  // Only found credentials are cached: a user or key created a moment ago works at once, and a
  // status or role change shows within the TTL. fetch() merges concurrent lookups of one key.
  // Keyed by the digest the database is searched by, so no plaintext credential is kept.
  // Users from the primary: a disabled user is refused at once, however far a replica lags. Keys
  // may come from a replica (app.readDb), as the logs they open do.
  const users = new LRUCache<string, AuthUser>({
    max: 10_000,
    ttl: Math.max(opts.cacheTtlMs, 1),
    fetchMethod: async (digest) => await findUserByAccessToken(app.db, Buffer.from(digest, 'base64'))
  })
  const keys = new LRUCache<string, ApiKeyOwner>({
    max: 10_000,
    ttl: Math.max(opts.cacheTtlMs, 1),
    fetchMethod: async (digest) => await findTokenByKey(app.readDb, Buffer.from(digest, 'base64'))
  })
  const noCache = opts.cacheTtlMs === 0

  async function lookupUser (token: string) {
    return await users.fetch(credentialDigest(token).toString('base64'), { forceRefresh: noCache }) ?? null
  }

  async function lookupKey (key: string) {
    return await keys.fetch(credentialDigest(key).toString('base64'), { forceRefresh: noCache }) ?? null
  }

  // Guessing credentials costs a lookup each: per client IP (request.ip, so through TRUST_PROXY),
  // failures are counted in a window, and past the limit that IP is refused before any lookup,
  // whatever it sends, so a right guess cannot be told from a wrong one. Shared through Redis
  // when REDIS_URL is set.
  const failures = failureCounter({ limit: opts.failureLimit, windowMs: opts.failureWindowMs, redis: app.redis, keyPrefix: app.redisKeyPrefix })
  async function refuseGuesser (request: FastifyRequest, reply: FastifyReply) {
    if (opts.failureLimit === 0) return
    const waitMs = await failures.blockedFor(request.ip)
    if (waitMs === 0) return
    const seconds = Math.ceil(waitMs / 1000)
    reply.header('retry-after', String(seconds))
    throw new RateLimitedError(`${seconds} seconds`)
  }
  async function countFailure (request: FastifyRequest) {
    if (opts.failureLimit === 0) return
    await failures.count(request.ip)
  }
  app.decorate('authFailures', { refuse: refuseGuesser, count: countFailure })

  app.decorateRequest('user', null)
  app.decorateRequest('apiKey', null)

  app.decorate('requireRole', function requireRole (minRole: number) {
    return async function authenticate (request: FastifyRequest, reply: FastifyReply) {
      const token = credentialFromHeader(request.headers.authorization)
      if (token === undefined) throw new UnauthorizedError('Unauthorized: no access token provided (Authorization header)')
      const claimedId = parseUserIdHeader(request.headers['new-api-user'])
      if (claimedId === 'missing') throw new UnauthorizedError('Unauthorized: New-Api-User header not provided')
      if (claimedId === 'malformed') throw new UnauthorizedError('Unauthorized: New-Api-User header must be a user id')

      await refuseGuesser(request, reply)
      const user = token.length > MAX_ACCESS_TOKEN ? null : await lookupUser(token)
      if (user === null || user.id !== claimedId) await countFailure(request)
      if (user === null) throw new UnauthorizedError('Unauthorized: invalid access token')
      if (user.id !== claimedId) throw new UnauthorizedError('Unauthorized: New-Api-User does not match the access token')
      if (user.status !== UserStatus.enabled) throw new ForbiddenError('User is disabled')
      if (user.role < minRole) throw new ForbiddenError('Forbidden: insufficient privileges')
      request.user = user
    }
  })

  app.decorate('authenticateApiKey', async function authenticateApiKey (request: FastifyRequest, reply: FastifyReply) {
    // The header wins: it keeps the key out of proxy access logs.
    let key = credentialFromHeader(request.headers.authorization)
    if (key === undefined) {
      const fromQuery = (request.query as Record<string, unknown> | undefined)?.key
      if (Array.isArray(fromQuery)) throw new BadParameterError('key must be given once')
      if (typeof fromQuery === 'string' && fromQuery.trim() !== '') key = fromQuery.trim()
    }
    if (key === undefined) throw new UnauthorizedError('Unauthorized: no API key provided (key parameter or Authorization header)')
    if (key.startsWith('sk-')) key = key.slice(3)

    await refuseGuesser(request, reply)
    const owner = key === '' || key.length > MAX_API_KEY ? null : await lookupKey(key)
    if (owner === null) {
      await countFailure(request)
      throw new TokenInvalidError()
    }
    request.apiKey = owner
  })
}, { name: 'auth', fastify: '5.x', dependencies: ['db', 'redis'] })
