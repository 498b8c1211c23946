import cliProgress from 'cli-progress'
import type { Command } from 'commander'
import type { IndexDefinition } from '../../seed/indexes.js'
import { resolveSeedOptions, SEED_DEFAULTS, seedDatabase, type SeedOptions, type SeedPhase, type SeedReporter, type SeedSummary } from '../../seed/seed.js'
import { databaseUrlOption, describeError, fmt, UsageError, withDatabase, type CliIo, type CliOutput } from '../context.js'
import { finiteNumber, integerIn, parseTime, positiveInteger } from '../parse.js'

// log-service seed --rows N [options]: fills the log tables with generated data (npm run seed).

const secs = (s: number): string => `${s.toFixed(1)} s`

function bytes (n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let i = 0
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

function isoMinute (unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().slice(0, 16).replace('T', ' ')
}

/**
 * On a terminal: a progress bar with rows/s and ETA. Otherwise (CI, a pipe): a line every
 * `intervalMs`. `pending` keeps the index definitions not rebuilt yet, for an interrupted run.
 */
function consoleReporter (out: CliOutput, intervalMs: number, pending: Map<string, IndexDefinition>): SeedReporter & { stop: () => void, current: () => SeedPhase | undefined } {
  const tty = out.isTTY === true
  let current: SeedPhase | undefined
  let bar: cliProgress.SingleBar | undefined
  let copyStarted = 0
  let lastLine = 0
  const line = (text: string) => { out.write(`${text}\n`) }
  const stop = () => {
    bar?.stop()
    bar = undefined
  }

  return {
    stop,
    current: () => current,
    phase (phase, detail) {
      stop()
      current = phase
      line(`[seed] ${phase}: ${detail}`)
      if (phase === 'copy') {
        copyStarted = performance.now()
        lastLine = copyStarted
      }
    },
    progress (done, total) {
      const elapsed = (performance.now() - copyStarted) / 1000
      const speed = elapsed > 0 ? fmt(done / elapsed) : '-'
      if (tty) {
        if (bar === undefined) {
          bar = new cliProgress.SingleBar({
            stream: out,
            format: '  {bar} {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}',
            formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? fmt(v) : String(v)),
            etaBuffer: 50,
            hideCursor: true
          }, cliProgress.Presets.shades_classic)
          bar.start(total, 0, { speed })
        }
        bar.update(done, { speed })
        if (done >= total) stop()
      } else if (performance.now() - lastLine >= intervalMs || done >= total) {
        lastLine = performance.now()
        const eta = done > 0 ? elapsed * (total - done) / done : 0
        line(`  ${fmt(done)} / ${fmt(total)} rows (${(100 * done / total).toFixed(1)} %), ${speed} rows/s, ETA ${secs(eta)}`)
      }
    },
    indexesDropped (indexes) {
      for (const index of indexes) pending.set(index.name, index)
    },
    indexBuilt (name, seconds) {
      pending.delete(name)
      line(`  built ${name} in ${secs(seconds)}`)
    }
  }
}

/** What an interrupted run leaves: nothing before the commit, maybe missing indexes after it. */
function interruptNotice (phase: SeedPhase | undefined, pending: Map<string, IndexDefinition>): string {
  if (phase !== 'indexes' && phase !== 'analyze') return '\n[seed] interrupted: the load is rolled back\n'
  let text = '\n[seed] interrupted after the rows were committed\n'
  if (pending.size > 0) {
    text += 'these indexes may be missing now; create them with:\n'
    for (const index of pending.values()) text += `  ${index.definition};\n`
  }
  return text
}

function summary (s: SeedSummary, jobs: number): string {
  const lines = [
    `seeded ${fmt(s.rows)} log rows (ids ${s.firstId}..${s.lastId}, ${isoMinute(s.start)} .. ${isoMinute(s.end)} UTC) in ${secs(s.seconds)}`,
    `  generate + COPY  ${secs(s.copySeconds)} (${fmt(s.rowsPerSecond)} rows/s)`
  ]
  if (s.indexSeconds !== undefined) lines.push(`  index rebuild    ${secs(s.indexSeconds)} (${s.indexesRebuilt} indexes, ${jobs} connections)`)
  lines.push(`  ANALYZE          ${secs(s.analyzeSeconds)}`)
  lines.push(`  logs size        table ${bytes(s.tableBytes)} + indexes ${bytes(s.indexBytes)} = ${bytes(s.totalBytes)}`)
  return lines.join('\n') + '\n'
}

interface SeedCliOptions {
  rows: number
  days?: number
  end?: number
  users?: number
  tokensPerUser?: number
  models?: number
  channels?: number
  groups?: number
  skew?: number
  seed?: number
  dropIndexes?: boolean
  append?: boolean
  databaseUrl?: string
}

/** The flags as seed options: only those given, so the defaults stay seedDatabase's. */
function toSeedOptions (opts: SeedCliOptions): Partial<SeedOptions> & { rows: number } {
  const { databaseUrl: _url, dropIndexes, append, ...numbers } = opts
  const seedOptions = { ...Object.fromEntries(Object.entries(numbers).filter(([, v]) => v !== undefined)), rows: opts.rows, dropIndexes: dropIndexes === true, append: append === true }
  try {
    resolveSeedOptions(seedOptions)
  } catch (err) {
    throw new UsageError(describeError(err))
  }
  return seedOptions
}

export function registerSeedCommand (program: Command, io: CliIo): void {
  const d = SEED_DEFAULTS
  program.command('seed')
    .description('fill the log tables with generated data (users, API keys, channels, log rows), for trying the service and benchmarks')
    .requiredOption('--rows <n>', 'log rows to add', positiveInteger)
    .option('--days <n>', `window length in days, ending now or at --end (default ${d.days})`, positiveInteger)
    .option('--end <time>', 'end of the window: unix seconds or an ISO date/date-time (default: now)', parseTime)
    .option('--users <n>', `users (default ${d.users})`, positiveInteger)
    .option('--tokens-per-user <n>', `API keys per user (default ${d.tokensPerUser})`, positiveInteger)
    .option('--models <n>', `models (default ${d.models})`, positiveInteger)
    .option('--channels <n>', `channels (default ${d.channels})`, positiveInteger)
    .option('--groups <n>', `user groups (default ${d.groups})`, positiveInteger)
    .option('--skew <x>', `user id = 1 + floor(users * random^X): a few heavy users (default ${d.skew})`, finiteNumber)
    .option('--seed <n>', `PRNG seed: the same options give the same rows (default ${d.seed})`, integerIn(Number.MIN_SAFE_INTEGER))
    .option('--drop-indexes', 'drop the secondary indexes of logs for the load, rebuild them after')
    .option('--append', 'keep existing data and only add log rows (default: empty users, tokens, channels and logs first)')
    .addOption(databaseUrlOption())
    .addHelpText('after', '\nExample:\n  log-service seed --rows 1000000 --drop-indexes --database-url postgres://…/bench')
    .action(async (opts: SeedCliOptions) => {
      const seedOptions = toSeedOptions(opts)
      const jobs = SEED_DEFAULTS.indexJobs
      const pending = new Map<string, IndexDefinition>()
      const reporter = consoleReporter(io.stderr, io.progressIntervalMs, pending)
      await withDatabase(io, { url: opts.databaseUrl, poolMax: jobs + 1, applicationName: 'log-service-seed' }, async ({ pool, database }) => {
        // Stops the embedded server (rolling the load back) or, on another server, ends the
        // process and with it the connections; what is left is said first.
        const onSigint = () => {
          reporter.stop()
          io.stderr.write(interruptNotice(reporter.current(), pending))
          database.stop().finally(() => process.exit(130)).catch(() => {})
        }
        process.once('SIGINT', onSigint)
        if (seedOptions.dropIndexes !== true && seedOptions.rows >= 500_000) {
          io.stderr.write('[seed] tip: --drop-indexes makes a load this size several times faster (the trigram index is costly to maintain row by row)\n')
        }
        try {
          io.stdout.write(summary(await seedDatabase(pool, seedOptions, reporter), jobs))
        } catch (err) {
          reporter.stop()
          throw err
        } finally {
          process.off('SIGINT', onSigint)
        }
      })
    })
}
