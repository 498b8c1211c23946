import { open, rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { Option, type Command } from 'commander'
import { describeLogTypes, LOG_TYPE_MAX, LOG_TYPE_MIN } from '../../domain.js'
import { csvRecord } from '../../lib/csv.js'
import { EXPORT_FIELDS, exportBatches, exportSize, type ExportFormat } from '../../queries/logs/export.js'
import type { LogFilter } from '../../queries/logs/filter.js'
import { toFilter } from '../../routes/log/params.js'
import { adminFilterProps, commonFilterProps, requestIdProp, TypeFilterSchema } from '../../schemas/log.js'
import { CliError, databaseUrlOption, describeError, fmt, interruptible, startProgress, UsageError, withDatabase, type CliIo, type Session } from '../context.js'
import { integerIn, MAX_ID, parseTime } from '../parse.js'

// log-service export --out FILE: what GET /api/log/export streams, into a file, with no row cap.

/** The admin export route's filters, from the same schemas, so the CLI accepts exactly what the route does. */
const ExportFilterSchema = Type.Object({
  type: Type.Optional(TypeFilterSchema),
  ...commonFilterProps,
  ...adminFilterProps,
  ...requestIdProp
})

/** The command's options: the admin filter's fields (commander camel-cases the flags into them), and its own. */
type ExportOptions = Omit<LogFilter, 'userId' | 'tokenId'> & {
  out: string
  format: ExportFormat
  bom?: boolean
  databaseUrl?: string
}

/** The options as the route's query, checked against its schema; a failure names the option. */
export function exportFilter (opts: ExportOptions): LogFilter {
  const query = Object.fromEntries(Object.entries({
    type: opts.type,
    start_timestamp: opts.startTimestamp,
    end_timestamp: opts.endTimestamp,
    token_name: opts.tokenName,
    model_name: opts.modelName,
    group: opts.group,
    request_id: opts.requestId,
    username: opts.username,
    channel: opts.channel
  }).filter(([, v]) => v !== undefined))
  const error = Value.Errors(ExportFilterSchema, query).First()
  if (error !== undefined) throw new UsageError(`--${error.path.slice(1).replace(/_/g, '-')}: ${error.message}`)
  if (opts.bom === true && opts.format !== 'csv') throw new UsageError('--bom is for --format csv only')
  try {
    return toFilter(query)
  } catch (err) {
    throw new UsageError(describeError(err).replace('start_timestamp', '--start-timestamp').replace('end_timestamp', '--end-timestamp'))
  }
}

export function registerExportCommand (program: Command, io: CliIo): void {
  program.command('export')
    .description('write every log row matching the filters (newest first) to a file, as CSV or NDJSON: the admin export, without its row cap')
    .requiredOption('--out <file>', 'file to write; replaced only once the export is complete')
    .addOption(new Option('--format <format>', 'csv: RFC 4180 with a header row; ndjson: one JSON object per line').choices(['csv', 'ndjson']).default('csv'))
    .option('--bom', 'csv only: start with a UTF-8 byte order mark, for Excel')
    .option('--type <n>', `log type (${describeLogTypes()}), 0 = all types`, integerIn(LOG_TYPE_MIN, LOG_TYPE_MAX))
    .option('--start-timestamp <time>', 'from this time, inclusive: unix seconds or an ISO date/date-time (UTC unless it has an offset)', parseTime)
    .option('--end-timestamp <time>', 'up to this time, inclusive: unix seconds or an ISO date/date-time', parseTime)
    .option('--token-name <name>', 'API key name, exact')
    .option('--model-name <name>', 'model name, exact')
    .option('--group <group>', 'user group, exact')
    .option('--request-id <id>', 'request id, exact')
    .option('--username <name>', 'username, exact')
    .option('--channel <id>', 'channel id, 0 = all channels', integerIn(0, MAX_ID))
    .addOption(databaseUrlOption())
    .addHelpText('after', '\nExample:\n  log-service export --out january.csv --start-timestamp 2026-01-01 --end-timestamp 2026-01-31T23:59:59 --model-name gpt-4o')
    .action(async (opts: ExportOptions) => {
      const filter = exportFilter(opts)
      await withDatabase(io, { url: opts.databaseUrl, applicationName: 'log-service-export' }, async (session) => {
        const rows = await exportToFile(io, session, filter, opts)
        io.stdout.write(`wrote ${fmt(rows)} rows to ${opts.out} (${opts.format})\n`)
      })
    })
}

/**
 * Writes into `<out>.part` and renames it at the end, so a failed or stopped export never leaves a
 * file that looks complete. Returns the number of rows written.
 */
async function exportToFile (io: CliIo, { db, pool, config }: Session, filter: LogFilter, opts: ExportOptions): Promise<number> {
  const out = path.resolve(opts.out)
  const part = `${out}.part`
  // A count for the progress bar: exact where the rollups answer or up to the service's cap, else the planner's estimate.
  const size = await exportSize(db, filter, config.EXPORT_MAX_ROWS)
  io.stderr.write(`exporting ${size.exact ? '' : 'about '}${fmt(size.total)} rows to ${opts.out}\n`)

  const file = await open(part, 'w').catch((err: unknown) => { throw new CliError(`cannot write ${part}: ${describeError(err)}`) })
  const interrupt = interruptible(io, 'stopping the export')
  const progress = startProgress(io, 'export', 'rows', size.total)
  let rows = 0
  let complete = false
  try {
    if (opts.format === 'csv') await file.write((opts.bom === true ? '\uFEFF' : '') + csvRecord(EXPORT_FIELDS.admin))
    for await (const batch of exportBatches(db, pool, filter, { audience: 'admin', format: opts.format })) {
      if (interrupt.signal.aborted) break
      await file.write(batch.text)
      rows += batch.rows
      progress.update(rows)
    }
    if (interrupt.signal.aborted) throw new CliError(`export stopped after ${rows} rows; nothing written to ${opts.out}`, 130)
    complete = true
  } catch (err) {
    if (interrupt.signal.aborted && !(err instanceof CliError)) throw new CliError(`export stopped (${describeError(err)}); nothing written to ${opts.out}`, 130)
    throw err
  } finally {
    progress.stop()
    interrupt.dispose()
    await file.close()
    if (complete) await rename(part, out)
    else await rm(part, { force: true })
  }
  return rows
}
