import { createHash, timingSafeEqual } from 'node:crypto'
import type { Readable } from 'node:stream'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Role } from '../../domain.js'
import { BadParameterError, PayloadTooLargeError, UnauthorizedError } from '../../errors.js'
import { credentialFromHeader } from '../../plugins/auth.js'
import { BackfillError, backfillLogs } from '../../queries/logs/backfill.js'
import { insertLogRows, toLogRow } from '../../queries/logs/ingest.js'
import { errorResponses, ok, ref } from '../../schemas/common.js'
import { INGEST_BATCH_MAX, IngestBatchSchema, IngestedCountResponseSchema, rowProblem, type IngestRow } from '../../schemas/ingest.js'
import { descriptions } from './descriptions.js'
import { userSecurity } from './shared.js'

export interface IngestRoutesOptions {
  /** a bearer key that may write rows and nothing else; undefined = admins only */
  ingestKey?: string
  bodyLimit: number
  lineLimit: number
  maxBackfillBytes: number
  chunkRows: number
}

const NDJSON = 'application/x-ndjson'
const digest = (s: string) => createHash('sha256').update(s).digest()

function isNdjson (request: FastifyRequest): boolean {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() === NDJSON
}

/** The batch's rows, or a 400 naming the first bad row (0-based, as in the array) and its field. */
function checkBatch (body: unknown): IngestRow[] {
  if (!Array.isArray(body)) throw new BadParameterError(`body must be a JSON array of 1..${INGEST_BATCH_MAX} rows`)
  if (body.length === 0 || body.length > INGEST_BATCH_MAX) {
    throw new BadParameterError(`body must hold 1..${INGEST_BATCH_MAX} rows, not ${body.length} (send more as NDJSON)`)
  }
  body.forEach((row: unknown, i) => {
    const problem = rowProblem(row)
    if (problem !== undefined) throw new BadParameterError(`row ${i}: ${problem}`)
  })
  return body as IngestRow[]
}

// POST /api/log/: gateways write rows, as a JSON batch or an NDJSON backfill.
const ingestRoutes: FastifyPluginAsyncTypebox<IngestRoutesOptions> = async (app, opts) => {
  const keyDigest = opts.ingestKey === undefined ? null : digest(opts.ingestKey)
  const requireAdmin = app.requireRole(Role.admin)

  // The ingest key is compared as a digest in constant time; anything else must be an admin. A
  // bearer without New-Api-User can only be meant as the ingest key: a wrong one is a failed
  // authentication, limited per client like a wrong access token.
  app.addHook('onRequest', async function authenticateIngest (request: FastifyRequest, reply: FastifyReply) {
    const credential = credentialFromHeader(request.headers.authorization)
    if (keyDigest !== null && credential !== undefined) {
      await app.authFailures.refuse(request, reply)
      if (timingSafeEqual(digest(credential), keyDigest)) return
      if (request.headers['new-api-user'] === undefined) {
        await app.authFailures.count(request)
        throw new UnauthorizedError('Unauthorized: invalid ingest key')
      }
    }
    await requireAdmin.call(app, request, reply)
  })

  // JSON or NDJSON only: anything else is a 415, not a string for the handler to puzzle over.
  app.removeContentTypeParser('text/plain')
  // The body stays a stream: backfillLogs reads it line by line as chunks are written.
  app.addContentTypeParser(NDJSON, function passThrough (_request, payload, done) { done(null, payload) })

  app.post('/', {
    prefixTrailingSlash: 'slash',
    bodyLimit: opts.bodyLimit,
    schema: {
      operationId: 'ingestLogs',
      description: descriptions.ingestLogs(opts),
      summary: 'Write log rows: a JSON batch of up to 1,000 (all or none), or an NDJSON backfill of any size',
      tags: ['ingest'],
      security: [...userSecurity, { ingestKey: [] }],
      body: {
        content: {
          'application/json': { schema: IngestBatchSchema },
          [NDJSON]: { schema: Type.String({ description: 'one IngestLogRow as JSON per line', examples: ['{"user_id":7,"type":2,"model_name":"gpt-4o","quota":1250}\n{"user_id":8,"type":2,"quota":90}\n'] }) }
        }
      },
      response: { 200: ref(IngestedCountResponseSchema), ...errorResponses(400, 401, 403, 413, 415, 429, 500, 503) }
    },
    // Checked in the handler: the batch row by row (the message names the row), the NDJSON body as it streams.
    validatorCompiler: () => () => true,
    config: { failureMessage: '写入日志失败' }
  }, async (request, reply) => {
    const now = () => Math.floor(Date.now() / 1000)
    if (!isNdjson(request)) {
      const at = now()
      const written = await insertLogRows(app.db, checkBatch(request.body).map((r) => toLogRow(r, at)))
      app.metrics.ingestedRows.inc({ path: 'batch' }, written)
      return ok(written)
    }
    try {
      let counted = 0
      const written = await backfillLogs(app.pool, request.body as Readable, {
        chunkRows: opts.chunkRows,
        chunkBytes: 8 * 1024 * 1024,
        maxLineBytes: opts.lineLimit,
        maxBytes: opts.maxBackfillBytes,
        now,
        // Counted as each chunk commits: a backfill that stops half-way wrote its first chunks.
        onChunk: (n) => {
          app.metrics.ingestedRows.inc({ path: 'ndjson' }, n - counted)
          counted = n
          request.log.debug({ written: n }, 'backfill chunk written')
        }
      })
      request.log.info({ written }, 'backfill written')
      return ok(written)
    } catch (err) {
      if (!(err instanceof BackfillError)) {
        // A client that hung up mid-body is not a server failure; whole chunks before it stay written.
        if (request.raw.destroyed) request.log.info('backfill stopped: the client went away')
        throw err
      }
      request.log.info({ written: err.written }, 'backfill stopped')
      // The rest of the body is not wanted: close rather than read it to the end.
      reply.header('connection', 'close')
      throw err.kind === 'line' ? new BadParameterError(err.message) : new PayloadTooLargeError(err.message)
    }
  })
}

export default ingestRoutes
