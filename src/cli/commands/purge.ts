import type { Command } from 'commander'
import { countLogs } from '../../queries/logs/total.js'
import { purgeLogsBefore, PurgeStoppedError } from '../../queries/purge.js'
import { CliError, databaseUrlOption, describeError, fmt, interruptible, startProgress, UsageError, withDatabase, type CliIo } from '../context.js'
import { parseTime } from '../parse.js'

// log-service purge --before <time>: the API's history purge (DELETE /api/log/), from a terminal.

/** `2026-01-01T00:00:00Z (1767225600)`, or the bare number when it is past what a Date holds. */
export function describeTime (seconds: number): string {
  const date = new Date(seconds * 1000)
  return Number.isNaN(date.getTime()) ? String(seconds) : `${date.toISOString().replace('.000Z', 'Z')} (${seconds})`
}

export function registerPurgeCommand (program: Command, io: CliIo): void {
  program.command('purge')
    .description('delete every log row older than a time, in short batches that keep the stats exact (as DELETE /api/log/ does)')
    .requiredOption('--before <time>', 'rows with created_at strictly before this go: unix seconds, YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS] (UTC unless it ends in an offset like +08:00)', parseTime)
    .addOption(databaseUrlOption())
    .addHelpText('after', `
Batches follow PURGE_BATCH_SIZE and PURGE_UNIT_MAX_ROWS, as the service's purge does, and only one purge
runs at a time. Ctrl-C stops at the next batch boundary: what is deleted stays deleted, the stats stay exact,
and running the same command again finishes the job (exit code 130 when stopped).

Example:
  log-service purge --before 2026-01-01`)
    .action(async (opts: { before: number, databaseUrl?: string }) => {
      if (opts.before < 1) throw new UsageError('--before must be after 1970-01-01T00:00:00Z')
      await withDatabase(io, { url: opts.databaseUrl, applicationName: 'log-service-purge' }, async ({ db, config }) => {
        // Exact and cheap: the rollups answer a count by time alone.
        const { total } = await countLogs(db, { endTimestamp: opts.before - 1 })
        io.stderr.write(`purging ${fmt(total)} rows older than ${describeTime(opts.before)}\n`)

        const interrupt = interruptible(io, 'stopping the purge at the next batch boundary')
        const progress = startProgress(io, 'purge', 'rows', total)
        let deleted = 0
        try {
          const result = await purgeLogsBefore(db, {
            before: opts.before,
            batchSize: config.PURGE_BATCH_SIZE,
            unitMaxRows: config.PURGE_UNIT_MAX_ROWS,
            signal: interrupt.signal,
            onBatch: (_n, sum) => {
              deleted = sum
              progress.update(sum)
            }
          })
          progress.stop()
          if (result === null) throw new CliError('another purge is running (the service or another CLI holds the purge lock): run this again once it has finished')
          io.stdout.write(`purged ${fmt(result)} rows older than ${describeTime(opts.before)}\n`)
        } catch (err) {
          progress.stop()
          if (err instanceof PurgeStoppedError) throw new CliError(`stopped after ${err.deleted} rows; run it again to finish`, 130)
          // Ctrl-C in a terminal reaches an embedded server too, which then cuts the batch in flight
          // (rolled back): every batch before it stands.
          if (interrupt.signal.aborted && !(err instanceof CliError)) {
            throw new CliError(`stopped after ${deleted} rows (${describeError(err)}); run it again to finish`, 130)
          }
          throw err
        } finally {
          interrupt.dispose()
        }
      })
    })
}
