import createError from '@fastify/error'

// Every domain failure of the API, with a stable code beside the message. The HTTP status comes
// from the contract's table (spec/log-api.md, "Envelope and status codes").

export const BadParameterError = createError('LOG_BAD_PARAMETER', '%s', 400)
export const BadRequestError = createError('LOG_BAD_REQUEST', '%s', 400)
export const TargetTimestampRequiredError = createError('LOG_TARGET_REQUIRED', 'target timestamp is required', 400)
export const UnauthorizedError = createError('LOG_UNAUTHORIZED', '%s', 401)
export const ForbiddenError = createError('LOG_FORBIDDEN', '%s', 403)
export const TokenInvalidError = createError('LOG_TOKEN_INVALID', 'Token不存在或无权限', 401)
export const PurgeRunningError = createError('LOG_PURGE_RUNNING', 'a history purge is already running', 409)
export const ExportTooLargeError = createError('LOG_EXPORT_TOO_LARGE', '%s', 400)
export const PayloadTooLargeError = createError('LOG_PAYLOAD_TOO_LARGE', '%s', 413)
export const ShuttingDownError = createError('LOG_SHUTTING_DOWN', '%s', 503)
export const RateLimitedError = createError('LOG_RATE_LIMITED', 'rate limit exceeded, retry in %s', 429)
export const OverloadedError = createError('LOG_OVERLOADED', 'the service is overloaded, retry in %s seconds', 503)

/**
 * Every `code` an error response carries: the domain errors above, and those the error handler
 * answers itself (error-handler.ts). The OpenAPI document states them as an enum.
 */
export const ERROR_CODES = [
  'LOG_BAD_PARAMETER', 'LOG_TARGET_REQUIRED', 'LOG_BAD_REQUEST', 'LOG_UNAUTHORIZED', 'LOG_TOKEN_INVALID', 'LOG_FORBIDDEN',
  'LOG_NOT_FOUND', 'LOG_PURGE_RUNNING', 'LOG_EXPORT_TOO_LARGE', 'LOG_PAYLOAD_TOO_LARGE', 'LOG_HEADERS_TOO_LARGE', 'LOG_UNSUPPORTED_MEDIA_TYPE', 'LOG_RATE_LIMITED', 'LOG_INTERNAL', 'LOG_DB_UNAVAILABLE', 'LOG_SHUTTING_DOWN',
  'LOG_NOT_READY', 'LOG_OVERLOADED'
] as const

export type ErrorCode = typeof ERROR_CODES[number]

const KNOWN = new Set<string>(ERROR_CODES)
const BY_STATUS: Record<number, ErrorCode> = { 401: 'LOG_UNAUTHORIZED', 403: 'LOG_FORBIDDEN', 404: 'LOG_NOT_FOUND', 413: 'LOG_PAYLOAD_TOO_LARGE', 415: 'LOG_UNSUPPORTED_MEDIA_TYPE', 429: 'LOG_RATE_LIMITED' }

/** Whether `code` is one of ours (a deliberate answer), not a framework's or a driver's. */
export function isOwnCode (code: string | undefined): boolean {
  return code !== undefined && KNOWN.has(code)
}

/** A client error's stable code: its own when it is one of ours, else one by its status (Fastify's own errors). */
export function clientErrorCode (code: string | undefined, status: number): ErrorCode {
  if (code !== undefined && KNOWN.has(code)) return code as ErrorCode
  return BY_STATUS[status] ?? 'LOG_BAD_REQUEST'
}
