import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isConflict, isDatabaseError, isDatabaseUnavailable } from './db/errors.js'
import { clientErrorCode, isOwnCode, type ErrorCode } from './errors.js'
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
    // Client errors, and the server-side answers that are ours by design (shutting down).
    if (status !== undefined && status >= 400 && (status < 500 || isOwnCode(error.code)) && !isDatabaseError(error)) {
      return reply.code(status).send(errorEnvelope(error.message, clientErrorCode(error.code, status)))
    }

    // Server side: log the cause, answer without SQL, stack or driver text.
    // A conflict is transient too: worth the same retry.
    const unavailable = isDatabaseUnavailable(error) || isConflict(error)
    const failure = request.routeOptions.config.failureMessage
    // With the request (URL redacted by the logger's serializer): at the default level, nothing
    // else says which request it was, and the one that timed out is what an operator looks for.
    if (unavailable) {
      request.log.warn({ err: error, req: request }, 'database unavailable')
      reply.header('retry-after', '1')
      return reply.code(503).send(errorEnvelope(failure ?? 'service temporarily unavailable', 'LOG_DB_UNAVAILABLE'))
    }
    request.log.error({ err: error, req: request }, 'request failed')
    return reply.code(500).send(errorEnvelope(failure ?? 'internal server error', 'LOG_INTERNAL'))
  })

  app.setNotFoundHandler(function notFound (request, reply) {
    return reply.code(404).send(errorEnvelope(`route ${request.method} ${request.url.split('?')[0]} not found`, 'LOG_NOT_FOUND'))
  })
}

/**
 * Fastify's clientErrorHandler: what Node's HTTP parser refuses (a malformed request line, an
 * unknown method, a NUL or CR in a header, Content-Length beside chunked, headers or URL over the
 * limit) never reaches a route; the answer is still the envelope, written on the socket, which
 * then closes (the parser cannot find the next request's start).
 */
export function clientErrorHandler (err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket): void {
  // A client gone or a connection timed out: nobody to answer.
  if (err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
    socket.destroy()
    return
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW'
  const status = tooLarge ? 431 : 400
  const body = JSON.stringify(tooLarge
    ? errorEnvelope('the request line and headers are over the 16 KB limit', 'LOG_HEADERS_TOO_LARGE')
    : errorEnvelope('malformed HTTP request', 'LOG_BAD_REQUEST'))
  answerAfterInFlight(socket, `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

/**
 * Garbage pipelined behind whole requests: those requests were parsed and are being answered, and
 * their answers go first (written now, the refusal would replace a valid request's answer, or cut
 * into a body already streaming). Node keeps the answer being written in `socket._httpMessage`
 * and the next ones queued behind it, each attached there when the one before it finishes.
 */
function answerAfterInFlight (socket: Socket, refusal: string): void {
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
  if (inFlight != null && !inFlight.writableFinished) {
    const next = () => setImmediate(() => answerAfterInFlight(socket, refusal))
    inFlight.once('finish', next)
    inFlight.once('close', () => { if (!inFlight.writableFinished) socket.destroy() })
    return
  }
  if (socket.writable) socket.end(refusal)
  else socket.destroy()
}

/** Fastify's frameworkErrors: a URL that cannot be decoded, and the like, before any route. */
export function frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const message = error.code === 'FST_ERR_BAD_URL' ? 'the URL is not valid percent-encoded UTF-8' : 'malformed request'
  reply.code(400).send(errorEnvelope(message, 'LOG_BAD_REQUEST'))
}

/**
 * The server's 'checkExpectation': an Expect header other than 100-continue. Node would answer a
 * bare 417 with no body; this is the same 417 in the envelope.
 */
export function expectationFailed (_request: IncomingMessage, response: ServerResponse): void {
  const body = JSON.stringify(errorEnvelope('the Expect header supports only 100-continue', 'LOG_BAD_REQUEST'))
  response.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' })
  response.end(body)
}
