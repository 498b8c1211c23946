import { LRUCache } from 'lru-cache'
import type { Redis } from 'ioredis'

// Failed authentications per client, in a fixed window from the client's first failure. Counted
// in this process always, and in Redis too when there is one, so that a guesser who spreads
// attempts over instances meets the same limit; while Redis fails, this process's own count
// still holds the line.

export interface FailureCounter {
  /** milliseconds until `client` may try again; 0 when it may try now */
  blockedFor: (client: string) => Promise<number>
  count: (client: string) => Promise<void>
}

export interface FailureCounterOptions {
  limit: number
  windowMs: number
  redis?: Redis | null
  keyPrefix?: string
}

export function failureCounter (opts: FailureCounterOptions): FailureCounter {
  const local = new LRUCache<string, { count: number, resetAt: number }>({ max: 100_000, ttl: opts.windowMs })
  const localBlockedFor = (client: string) => {
    const seen = local.get(client)
    return seen === undefined || seen.count < opts.limit ? 0 : Math.max(1, seen.resetAt - Date.now())
  }
  const countLocally = (client: string) => {
    const seen = local.get(client)
    if (seen === undefined) local.set(client, { count: 1, resetAt: Date.now() + opts.windowMs })
    else seen.count++
  }

  const redis = opts.redis
  if (redis === undefined || redis === null) {
    return {
      blockedFor: async (client) => localBlockedFor(client),
      count: async (client) => { countLocally(client) }
    }
  }

  const key = (client: string) => `${opts.keyPrefix ?? ''}auth-failures:${client}`
  return {
    async blockedFor (client) {
      const here = localBlockedFor(client)
      if (here > 0) return here
      try {
        const [[, count], [, ttl]] = await redis.multi().get(key(client)).pttl(key(client)).exec() as [[null, string | null], [null, number]]
        if (count === null || Number(count) < opts.limit) return 0
        return ttl > 0 ? ttl : opts.windowMs
      } catch {
        // Redis away (logged by the redis plugin): this instance's count decides.
        return 0
      }
    },
    async count (client) {
      countLocally(client)
      try {
        // The window starts at the first failure anywhere: SET NX PX, then INCR, in one transaction.
        await redis.multi().set(key(client), '0', 'PX', opts.windowMs, 'NX').incr(key(client)).exec()
      } catch {}
    }
  }
}
