import fp from 'fastify-plugin'
import { LRUCache } from 'lru-cache'
import type { FastifyRequest, onRequestAsyncHookHandler, preValidationAsyncHookHandler } from 'fastify'
import { findTokenByKey, findUserByAccessToken, type ApiKeyOwner, type AuthUser } from '../queries/auth.js'
import { UserStatus } from '../domain.js'
import { BadParameterError, ForbiddenError, TokenInvalidError, UnauthorizedError } from '../errors.js'

export interface AuthPluginOptions {
  /** How long a user or key lookup is trusted; the contract allows a few seconds. 0 disables the cache. */
  cacheTtlMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: access token + New-Api-User, then status, then role. */
    requireRole: (minRole: number) => onRequestAsyncHookHandler
    /** preValidation hook for /api/log/token: the API key from the header or `key`. */
    authenticateApiKey: preValidationAsyncHookHandler
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
  const users = new LRUCache<string, AuthUser>({
    max: 10_000,
    ttl: Math.max(opts.cacheTtlMs, 1),
    fetchMethod: async (token) => await findUserByAccessToken(app.db, token)
  })
  const keys = new LRUCache<string, ApiKeyOwner>({
    max: 10_000,
    ttl: Math.max(opts.cacheTtlMs, 1),
    fetchMethod: async (key) => await findTokenByKey(app.db, key)
  })
  const noCache = opts.cacheTtlMs === 0

  async function lookupUser (token: string) {
    return await users.fetch(token, { forceRefresh: noCache }) ?? null
  }

  async function lookupKey (key: string) {
    return await keys.fetch(key, { forceRefresh: noCache }) ?? null
  }

  app.decorateRequest('user', null)
  app.decorateRequest('apiKey', null)

  app.decorate('requireRole', function requireRole (minRole: number) {
    return async function authenticate (request: FastifyRequest) {
      const token = credentialFromHeader(request.headers.authorization)
      if (token === undefined) throw new UnauthorizedError('Unauthorized: no access token provided (Authorization header)')
      const claimedId = parseUserIdHeader(request.headers['new-api-user'])
      if (claimedId === 'missing') throw new UnauthorizedError('Unauthorized: New-Api-User header not provided')
      if (claimedId === 'malformed') throw new UnauthorizedError('Unauthorized: New-Api-User header must be a user id')

      const user = token.length > MAX_ACCESS_TOKEN ? null : await lookupUser(token)
      if (user === null) throw new UnauthorizedError('Unauthorized: invalid access token')
      if (user.id !== claimedId) throw new UnauthorizedError('Unauthorized: New-Api-User does not match the access token')
      if (user.status !== UserStatus.enabled) throw new ForbiddenError('User is disabled')
      if (user.role < minRole) throw new ForbiddenError('Forbidden: insufficient privileges')
      request.user = user
    }
  })

  app.decorate('authenticateApiKey', async function authenticateApiKey (request: FastifyRequest) {
    // The header wins: it keeps the key out of proxy access logs.
    let key = credentialFromHeader(request.headers.authorization)
    if (key === undefined) {
      const fromQuery = (request.query as Record<string, unknown> | undefined)?.key
      if (Array.isArray(fromQuery)) throw new BadParameterError('key must be given once')
      if (typeof fromQuery === 'string' && fromQuery.trim() !== '') key = fromQuery.trim()
    }
    if (key === undefined) throw new UnauthorizedError('Unauthorized: no API key provided (key parameter or Authorization header)')
    if (key.startsWith('sk-')) key = key.slice(3)

    const owner = key === '' || key.length > MAX_API_KEY ? null : await lookupKey(key)
    if (owner === null) throw new TokenInvalidError()
    request.apiKey = owner
  })
}, { name: 'auth', fastify: '5.x', dependencies: ['db'] })
