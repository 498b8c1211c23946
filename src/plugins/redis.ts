import fp from 'fastify-plugin'
import { Redis } from 'ioredis'

// An optional Redis shared by every instance (REDIS_URL). It is a helper, never a dependency: each
// command fails at once while Redis is away (no offline queue, a short timeout) and its callers
// fall back to what one instance knows, so a Redis outage never stops authentication.

export interface RedisPluginOptions {
  url?: string
  keyPrefix: string
  /** a command that has not answered by then is treated as failed (default 250 ms) */
  commandTimeoutMs?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** null when REDIS_URL is unset */
    redis: Redis | null
    redisKeyPrefix: string
  }
}

/** One warning per this while Redis stays unreachable, not one per reconnect attempt. */
const WARN_EVERY_MS = 60_000

export default fp<RedisPluginOptions>(async function redisPlugin (app, opts) {
  app.decorate('redisKeyPrefix', opts.keyPrefix)
  if (opts.url === undefined) {
    app.decorate('redis', null)
    return
  }
  const redis = new Redis(opts.url, {
    enableOfflineQueue: false,
    commandTimeout: opts.commandTimeoutMs ?? 250,
    maxRetriesPerRequest: 0,
    // Reconnects for ever, at most every 5 s.
    retryStrategy: (attempt) => Math.min(attempt * 200, 5000)
  })
  let lastWarning = 0
  // The URL may hold a password: only the error's code and message are logged.
  redis.on('error', (err: Error & { code?: string }) => {
    if (Date.now() - lastWarning < WARN_EVERY_MS) return
    lastWarning = Date.now()
    app.log.warn({ code: err.code, reason: err.message }, 'Redis unreachable: counting failed authentications per instance until it is back')
  })
  app.decorate('redis', redis)
  app.addHook('onClose', async () => { redis.disconnect() })
}, { name: 'redis', fastify: '5.x' })
