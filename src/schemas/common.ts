import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { ERROR_CODES, type ErrorCode } from '../errors.js'
import { errorExample } from './examples.js'

export const ErrorResponseSchema = Type.Object({
  success: Type.Literal(false),
  message: Type.String(),
  code: Type.Unsafe<ErrorCode>({ type: 'string', enum: [...ERROR_CODES], description: 'stable machine-readable error code' })
}, { $id: 'ErrorResponse', title: 'ErrorResponse', examples: [errorExample] })

/**
 * A $ref to a shared schema (registered once with app.addSchema), so the OpenAPI document has one
 * component per shape; Unsafe keeps the static type for the type provider.
 */
export function ref<T extends TSchema> (schema: T, options: { description?: string, headers?: Record<string, TSchema> } = {}) {
  if (schema.$id === undefined) throw new Error('ref() needs a schema with an $id')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id, options))
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'A parameter is missing, malformed or out of range (the message names it)',
  401: 'No credentials, unknown access token or key, or New-Api-User missing or not matching',
  403: 'Authenticated, but the user is disabled or the role is too low',
  409: 'A history purge is already running',
  413: 'The body is over the configured limit (the message names it)',
  415: 'Content-Type is neither application/json nor application/x-ndjson',
  429: 'Rate limit exceeded; see the Retry-After header',
  500: 'Database failure',
  503: 'Database unavailable or the statement timed out (LOG_DB_UNAVAILABLE), or the service is overloaded and shed the request (LOG_OVERLOADED); retry after Retry-After'
}

const RetryAfterHeader = Type.Integer({ minimum: 0, description: 'seconds to wait before retrying' })

/** The headers each error status carries besides the envelope (declared for generated clients). */
const ERROR_HEADERS: Record<number, Record<string, TSchema>> = {
  429: { 'Retry-After': RetryAfterHeader, ...rateLimitHeaders() },
  503: { 'Retry-After': RetryAfterHeader }
}

/** What the rate limit sends on every answer of a limited route. */
export function rateLimitHeaders (): Record<string, TSchema> {
  return {
    'X-RateLimit-Limit': Type.Integer({ description: 'requests allowed per window, per client IP' }),
    'X-RateLimit-Remaining': Type.Integer({ description: 'requests left in the current window' }),
    'X-RateLimit-Reset': Type.Integer({ description: 'seconds until the window resets' })
  }
}

/** Response schemas for the error statuses a route can answer, each in the one error envelope. */
export function errorResponses (...statuses: number[]) {
  const out: Record<number, TSchema> = {}
  for (const status of statuses) {
    out[status] = ref(ErrorResponseSchema, { description: ERROR_DESCRIPTIONS[status], headers: ERROR_HEADERS[status] })
  }
  return { ...out, default: ref(ErrorResponseSchema, { description: 'Any other failure, in the same envelope' }) }
}

/** The success envelope's value around a route's data (the response schema is Envelope). */
export const ok = <T>(data: T) => ({ success: true as const, message: '', data })

/** The success envelope around a route's data; with an $id, a named component of the document. */
export function Envelope<T extends TSchema> (data: T, options: { $id?: string, description?: string, examples?: unknown[] } = {}) {
  return Type.Object({
    success: Type.Literal(true),
    message: Type.String(),
    data
  }, options.$id === undefined ? options : { ...options, title: options.$id })
}
