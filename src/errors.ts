import createError from '@fastify/error'

// Every domain failure of the API, with a stable code beside the message. The HTTP status comes
// from the contract's table (spec/log-api.md, "Envelope and status codes").

export const BadParameterError = createError('LOG_BAD_PARAMETER', '%s', 400)
export const TargetTimestampRequiredError = createError('LOG_TARGET_REQUIRED', 'target timestamp is required', 400)
export const UnauthorizedError = createError('LOG_UNAUTHORIZED', '%s', 401)
export const ForbiddenError = createError('LOG_FORBIDDEN', '%s', 403)
export const TokenInvalidError = createError('LOG_TOKEN_INVALID', 'Token不存在或无权限', 401)
export const PurgeRunningError = createError('LOG_PURGE_RUNNING', 'a history purge is already running', 409)
export const RateLimitedError = createError('LOG_RATE_LIMITED', 'rate limit exceeded, retry in %s', 429)
