import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isDatabaseError, isDatabaseUnavailable } from './db/errors.js'
import { clientErrorCode, type ErrorCode } from './errors.js'
import { describeIssue } from './lib/validator.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The message a route answers with when it fails on the server side (the contract's per-route text). */
    failureMessage?: string
  }
}

type ValidationIssue = Parameters<typeof describeIssue>[0]

/** Ajv's first issue as a sentence that names the parameter: `page_size must be <= 100`. */
function describeValidation (issues: ValidationIssue[], context: string | undefined): string {
  const issue = issues[0]
  return issue === undefined ? 'invalid request' : describeIssue(issue, context ?? 'request', 'parameter')
}

export function errorEnvelope (message: string, code: ErrorCode) {
  return { success: false as const, message, code }
}

export function setErrorHandlers (app: FastifyInstance) {
  app.setErrorHandler(function errorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    // A route's own schemaErrorFormatter already chose its message and code.
    if (error.validation && error.code === 'FST_ERR_VALIDATION') {
      return reply.code(400).send(errorEnvelope(describeValidation(error.validation as ValidationIssue[], error.validationContext), 'LOG_BAD_PARAMETER'))
    }

    const status = error.statusCode
    if (status !== undefined && status >= 400 && status < 500 && !isDatabaseError(error)) {
      return reply.code(status).send(errorEnvelope(error.message, clientErrorCode(error.code, status)))
    }

    // Server side: log the cause, answer without SQL, stack or driver text.
    const unavailable = isDatabaseUnavailable(error)
    const failure = request.routeOptions.config.failureMessage
    if (unavailable) {
      request.log.warn({ err: error }, 'database unavailable')
      reply.header('retry-after', '1')
      return reply.code(503).send(errorEnvelope(failure ?? 'service temporarily unavailable', 'LOG_DB_UNAVAILABLE'))
    }
    request.log.error({ err: error }, 'request failed')
    return reply.code(500).send(errorEnvelope(failure ?? 'internal server error', 'LOG_INTERNAL'))
  })

  app.setNotFoundHandler(function notFound (request, reply) {
    return reply.code(404).send(errorEnvelope(`route ${request.method} ${request.url.split('?')[0]} not found`, 'LOG_NOT_FOUND'))
  })
}
