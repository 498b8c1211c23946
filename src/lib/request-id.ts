import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'

// X-Request-Id: a trusted proxy's id is kept, so that one id follows a request from nginx's access
// log through every log line of the service; anyone else's is replaced, since a client could
// otherwise write what it likes into the logs or pass itself off as another request.

export const REQUEST_ID_HEADER = 'x-request-id'

/** What an id from a proxy may look like: nginx's 32 hex digits, UUIDs, and the like. */
const VALID_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/

/** Whether the peer of a connection is a trusted proxy, as Fastify decides it for request.ip. */
function trustedPeer (trustProxy: boolean | number | string[]): (address: string) => boolean {
  if (trustProxy === true) return () => true
  // Fastify (5.12) trusts no peer for a bare hop count: its X-Forwarded-For is not used either.
  if (trustProxy === false || typeof trustProxy === 'number') return () => false
  const trust = proxyAddr.compile(trustProxy)
  return (address) => trust(address, 0)
}

/** Fastify's genReqId: the trusted proxy's X-Request-Id when it sent a valid one, else a new UUID. */
export function requestIdGenerator (trustProxy: boolean | number | string[]): (req: IncomingMessage) => string {
  const trusted = trustedPeer(trustProxy)
  return (req) => {
    const sent = req.headers[REQUEST_ID_HEADER]
    const address = req.socket.remoteAddress
    if (typeof sent === 'string' && VALID_ID.test(sent) && address !== undefined && trusted(address)) return sent
    return randomUUID()
  }
}
