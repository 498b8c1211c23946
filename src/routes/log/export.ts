import { Readable } from 'node:stream'
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify'
import { ExportTooLargeError } from '../../errors.js'
import { csvRecord } from '../../lib/csv.js'
import type { LogFilter } from '../../queries/logs/filter.js'
import { EXPORT_FIELDS, exportBatches, exportSize, type ExportAudience, type ExportFormat } from '../../queries/logs/export.js'
import { errorResponses } from '../../schemas/common.js'
import { adminItemExample, userItemExample } from '../../schemas/examples.js'
import { adminFilterProps, commonFilterProps, requestIdProp, TypeFilterSchema } from '../../schemas/log.js'
import { descriptions } from './descriptions.js'
import { currentUser, toFilter } from './params.js'
import { userSecurity } from './shared.js'

const exportProps = {
  // No default in the schema: @fastify/swagger would then document the parameter as required.
  format: Type.Optional(Type.Unsafe<ExportFormat>({ type: 'string', enum: ['csv', 'ndjson'], description: 'csv (the default): RFC 4180 with a header row; ndjson: one JSON object per line' })),
  bom: Type.Optional(Type.Boolean({ description: 'csv only: start with a UTF-8 byte order mark, which Excel needs to read non-ASCII text (e.g. Chinese) as UTF-8; default false' }))
}

// As the list routes take them, without paging: an export is every matching row.
const AdminExportQuerySchema = Type.Object({
  type: Type.Optional(TypeFilterSchema),
  ...commonFilterProps,
  ...adminFilterProps,
  ...requestIdProp,
  ...exportProps
})

// No username or channel: a user's export is their own rows (unknown parameters are dropped).
const SelfExportQuerySchema = Type.Object({
  type: Type.Optional(TypeFilterSchema),
  ...commonFilterProps,
  ...requestIdProp,
  ...exportProps
})

const CONTENT_TYPES: Record<ExportFormat, string> = { csv: 'text/csv; charset=utf-8', ndjson: 'application/x-ndjson' }

/**
 * The 200 of an export, by media type. Each a string: OpenAPI 3.0 cannot say "a stream of items",
 * and a generated client must read the body as text or a stream, never parse it as one JSON value.
 * Fastify serializes nothing here: the payload is a stream.
 */
function exportResponse (item: 'UserLogItem' | 'AdminLogItem', fields: readonly string[], sample: Record<string, unknown>) {
  // In the order the export writes the fields.
  const example = Object.fromEntries(fields.map((f) => [f, sample[f]]))
  return {
    description: 'Every matching row, newest first, streamed as it is read',
    headers: {
      'Content-Disposition': Type.String({ description: 'attachment; filename="logs-<unix seconds>.csv" (or .ndjson)' }),
      'Cache-Control': Type.String({ description: 'no-store: no cache keeps a copy of the rows' })
    },
    content: {
      'text/csv': {
        schema: { type: 'string', description: `a header row (${fields.join(', ')}), then one record per row; CRLF line ends` },
        example: csvRecord(fields) + csvRecord(fields.map((f) => example[f] as string | number | boolean))
      },
      'application/x-ndjson': {
        schema: { type: 'string', description: `one ${item} as JSON per line` },
        example: JSON.stringify(example) + '\n'
      }
    }
  }
}

export interface ExportRoutesOptions {
  /** which route this scope gets: /export (admin) or /self/export (user) */
  audience: ExportAudience
  maxRows: number
}

/** GET /api/log/export and /api/log/self/export: every matching row as CSV or NDJSON, streamed in keyset batches. */
// No HEAD routes: Fastify answers HEAD by running the GET handler and draining its stream, which
// here would read every matching row for nothing.
const exportRoutes: FastifyPluginAsyncTypebox<ExportRoutesOptions> = async (app, opts) => {
  if (opts.audience === 'admin') {
    app.get('/export', {
      exposeHeadRoute: false,
      schema: {
        operationId: 'exportLogs',
        description: descriptions.exportLogs(opts.maxRows),
        summary: 'Every matching log row of the site as CSV or NDJSON, newest first, streamed',
        tags: ['admin'],
        security: userSecurity,
        querystring: AdminExportQuerySchema,
        response: { 200: exportResponse('AdminLogItem', EXPORT_FIELDS.admin, adminItemExample), ...errorResponses(400, 401, 403, 429, 500, 503) }
      },
      config: { failureMessage: '导出日志失败' }
    }, async (request, reply) => {
      const { format, bom, ...filters } = request.query
      return await sendExport(app, reply, toFilter(filters), { audience: 'admin', format: format ?? 'csv', bom: bom === true, maxRows: opts.maxRows })
    })
    return
  }

  app.get('/self/export', {
    exposeHeadRoute: false,
    schema: {
      operationId: 'exportSelfLogs',
      description: descriptions.exportSelfLogs(opts.maxRows),
      summary: "The caller's own logs as CSV or NDJSON, newest first, streamed",
      tags: ['user'],
      security: userSecurity,
      querystring: SelfExportQuerySchema,
      response: { 200: exportResponse('UserLogItem', EXPORT_FIELDS.user, userItemExample), ...errorResponses(400, 401, 403, 429, 500, 503) }
    },
    config: { failureMessage: '导出日志失败' }
  }, async (request, reply) => {
    const { format, bom, ...filters } = request.query
    const filter = { ...toFilter(filters), userId: currentUser(request).id }
    return await sendExport(app, reply, filter, { audience: 'user', format: format ?? 'csv', bom: bom === true, maxRows: opts.maxRows })
  })
}

interface ExportRequest {
  audience: ExportAudience
  format: ExportFormat
  bom: boolean
  maxRows: number
}

/**
 * The cap and the first batch are checked before anything is sent, so that their failures are
 * envelopes with the right status; after the first byte a failure can only abort the response.
 */
async function sendExport (app: FastifyInstance, reply: FastifyReply, f: LogFilter, req: ExportRequest) {
  const size = await exportSize(app.readDb, f, req.maxRows)
  if (size.total > req.maxRows) throw tooLarge(size.exact ? size.total.toLocaleString('en-US') : `more than ${req.maxRows.toLocaleString('en-US')}`, req.maxRows)

  const batches = exportBatches(app.readDb, app.readPool, f, req)
  const first = await batches.next()
  const head = req.format === 'csv' ? (req.bom ? '\uFEFF' : '') + csvRecord(EXPORT_FIELDS[req.audience]) : ''
  reply
    .header('content-type', CONTENT_TYPES[req.format])
    .header('content-disposition', `attachment; filename="logs-${Math.floor(Date.now() / 1000)}.${req.format}"`)
    // Not a page to keep: a proxy or browser cache would hold a copy of every row.
    .header('cache-control', 'no-store')
    // nginx would otherwise buffer the whole export (to disk) and keep the service from feeling a slow client.
    .header('x-accel-buffering', 'no')
  // Not object mode: the stream then pulls the next batch only once its 16 KB buffer has drained,
  // so a slow client slows the queries down instead of filling memory.
  return await reply.send(Readable.from(streamBatches(head, first, batches, req.maxRows, reply.log), { objectMode: false }))
}

function tooLarge (matches: string, maxRows: number) {
  return new ExportTooLargeError(`${matches} rows match; an export holds at most ${maxRows.toLocaleString('en-US')}: ` +
    'narrow the window (start_timestamp, end_timestamp) or the filters')
}

/**
 * The head (CSV header row), then the batches' text. Returning early (the client went away and the
 * stream was destroyed) ends the batch generator, which waits for its one statement in flight: no
 * query runs on for nobody.
 */
export async function * streamBatches (
  head: string, first: IteratorResult<{ text: Buffer, rows: number }, void>, batches: AsyncGenerator<{ text: Buffer, rows: number }, void>,
  maxRows: number, log: FastifyBaseLogger
): AsyncGenerator<Buffer | string> {
  let rows = 0
  let complete = false
  try {
    if (head !== '') yield head
    for (let next = first; next.done !== true; next = await batches.next()) {
      rows += next.value.rows
      // Rows written while the export runs, into the window it reads, can take it past the cap the count allowed.
      if (rows > maxRows) throw tooLarge(`more than ${maxRows.toLocaleString('en-US')}`, maxRows)
      log.debug({ rows: next.value.rows, total: rows }, 'export batch')
      yield next.value.text
    }
    complete = true
  } finally {
    if (!complete) await batches.return(undefined)
    if (complete) log.info({ rows }, 'export finished')
    else log.info({ rows }, 'export stopped before its end')
  }
}

export default exportRoutes
