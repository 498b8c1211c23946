import { Option, type Command } from 'commander'
import { applyPartitioning, migrateToLatest } from '../../db/migrate.js'
import { cliConfig, databaseUrlOption, withDatabase, type CliIo } from '../context.js'

export function registerMigrateCommand (program: Command, io: CliIo): void {
  program.command('migrate')
    .description('apply pending migrations, and LOG_PARTITIONS (convert the logs table to time partitions, once)')
    .addOption(databaseUrlOption())
    .addOption(new Option('--partitions <grain>', 'partition logs by day or month (default: LOG_PARTITIONS, else off); a partitioned table stays as it is').choices(['off', 'day', 'month']))
    .addHelpText('after', '\nExamples:\n  log-service migrate --database-url postgres://user:pass@db:5432/logs\n  log-service migrate --partitions day')
    .action(async (opts: { databaseUrl?: string, partitions?: 'off' | 'day' | 'month' }) => {
      const partitions = opts.partitions ?? cliConfig(io).LOG_PARTITIONS
      await withDatabase(io, { url: opts.databaseUrl, migrate: false, poolMax: 1 }, async ({ db }) => {
        const results = await migrateToLatest(db)
        for (const r of results) io.stdout.write(`${r.status === 'Success' ? 'applied' : r.status}: ${r.migrationName}\n`)
        if (results.length === 0) io.stdout.write('database is up to date\n')
        // Progress on stderr; the one line that says it happened on stdout.
        const converted = await applyPartitioning(db, partitions, (line) => io.stderr.write(`${line}\n`))
        if (converted) io.stdout.write(`logs partitioned by ${partitions}\n`)
      })
    })
}
