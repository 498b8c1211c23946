// Which driver errors mean "the database is unreachable or too slow right now" (503, worth a
// retry) as opposed to a failed statement (500).

const UNAVAILABLE_SQLSTATES = new Set([
  '57014', // query_canceled: statement_timeout fired
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / shutting down)
  '53300', // too_many_connections
  '3D000' // invalid_catalog_name: the database was dropped under us
])

const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN'])

const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Connection ended unexpectedly',
  'Cannot use a pool after calling end'
]

export function isDatabaseUnavailable (err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false
  const e = err as { code?: unknown, message?: unknown, errors?: unknown }
  if (typeof e.code === 'string') {
    if (UNAVAILABLE_SQLSTATES.has(e.code) || UNAVAILABLE_NODE_CODES.has(e.code)) return true
    if (e.code.startsWith('08')) return true // connection_exception class
  }
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.some((m) => (e.message as string).includes(m))) return true
  // Node's happy-eyeballs connect reports ECONNREFUSED for each address inside an AggregateError.
  if (Array.isArray(e.errors)) return e.errors.some(isDatabaseUnavailable)
  return false
}

// A statement that lost to another transaction, or on a replica to the replay of the primary's
// changes (serialization_failure, deadlock_detected: "conflict with recovery"): nothing is wrong
// with it, and run again it may well succeed.
const CONFLICT_SQLSTATES = new Set(['40001', '40P01'])

export function isConflict (err: unknown): boolean {
  return err !== null && typeof err === 'object' && CONFLICT_SQLSTATES.has((err as { code?: unknown }).code as string)
}

/** True for errors raised by the pg driver or PostgreSQL itself (they carry a SQLSTATE). */
export function isDatabaseError (err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false
  const e = err as { code?: unknown, severity?: unknown }
  return typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string'
}
