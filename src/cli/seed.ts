import { parseArgs, type ParseArgsConfig } from 'node:util'
import cliProgress from 'cli-progress'
import { loadConfig } from '../config.js'
import { resolveDatabase } from '../db/resolve.js'
import { migrateToLatest } from '../db/migrate.js'
import { createDb, createPool } from '../db/pool.js'
import type { IndexDefinition } from '../seed/indexes.js'
import { resolveSeedOptions, SEED_DEFAULTS, seedDatabase, type SeedOptions, type SeedPhase, type SeedReporter, type SeedSummary } from '../seed/seed.js'

// npm run seed -- --rows N [options]: fills the log tables with generated data.

const USAGE = `usage: npm run seed -- --rows N [options]

  --rows N              log rows to add (required)
  --days N              window length in days, ending now or at --end (default ${SEED_DEFAULTS.days})
  --end UNIX_SECONDS    end of the window (default: now)
  --users N             users (default ${SEED_DEFAULTS.users})
  --tokens-per-user N   API keys per user (default ${SEED_DEFAULTS.tokensPerUser})
  --models N            models (default ${SEED_DEFAULTS.models})
  --channels N          channels (default ${SEED_DEFAULTS.channels})
  --groups N            user groups (default ${SEED_DEFAULTS.groups})
  --skew X              user id = 1 + floor(users * random^X): a few heavy users (default ${SEED_DEFAULTS.skew})
  --seed N              PRNG seed: the same options give the same rows (default ${SEED_DEFAULTS.seed})
  --drop-indexes        drop the secondary indexes of logs for the load, rebuild them after
  --append              keep existing data and only add log rows (default: empty all four tables first)
  --database-url URL    default: $DATABASE_URL, else the embedded PostgreSQL that npm start uses
  -h, --help
`

function fail (message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}`)
  process.exit(2)
}

function integer (name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!/^-?[0-9]+$/.test(value)) fail(`--${name} must be an integer, got '${value}'`)
  return Number(value)
}

const VALUE_FLAGS = ['rows', 'days', 'end', 'users', 'tokens-per-user', 'models', 'channels', 'groups', 'skew', 'seed', 'database-url'] as const
const text = { type: 'string' } as const
const flag = { type: 'boolean', default: false } as const
const ARGS = {
  ...Object.fromEntries(VALUE_FLAGS.map((name) => [name, text])) as Record<typeof VALUE_FLAGS[number], typeof text>,
  'drop-indexes': flag,
  append: flag,
  help: { ...flag, short: 'h' }
} as const satisfies ParseArgsConfig['options']
const PARSE = { options: ARGS, strict: true, allowPositionals: false } as const

type CliOptions = Partial<SeedOptions> & { rows: number, databaseUrl?: string }

function parseOptions (): CliOptions {
  let values
  try {
    ({ values } = parseArgs(PARSE))
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err))
  }
  if (values.help) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  const opts = toSeedOptions(values)
  try {
    resolveSeedOptions(opts)
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err))
  }
  return opts
}

/** The flags as seed options: only those given, so the defaults stay seedDatabase's. */
function toSeedOptions (values: ReturnType<typeof parseArgs<typeof PARSE>>['values']): CliOptions {
  const rows = integer('rows', values.rows)
  if (rows === undefined) fail('--rows is required')
  const skew = values.skew === undefined ? undefined : Number(values.skew)
  if (skew !== undefined && Number.isNaN(skew)) fail(`--skew must be a number, got '${values.skew}'`)

  const opts: CliOptions = {
    rows,
    dropIndexes: values['drop-indexes'],
    append: values.append
  }
  const numbers = {
    days: integer('days', values.days),
    end: integer('end', values.end),
    users: integer('users', values.users),
    tokensPerUser: integer('tokens-per-user', values['tokens-per-user']),
    models: integer('models', values.models),
    channels: integer('channels', values.channels),
    groups: integer('groups', values.groups),
    seed: integer('seed', values.seed),
    skew
  }
  for (const [key, value] of Object.entries(numbers)) {
    if (value !== undefined) Object.assign(opts, { [key]: value })
  }
  if (values['database-url'] !== undefined) opts.databaseUrl = values['database-url']
  return opts
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')
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
 * On a terminal: a progress bar with rows/s and ETA. Otherwise (CI, a pipe): a line every 5 s.
 * `pending` keeps the index definitions not rebuilt yet, for an interrupted run.
 */
function consoleReporter (out: NodeJS.WriteStream, pending: Map<string, IndexDefinition>): SeedReporter & { stop: () => void, current: () => SeedPhase | undefined } {
  const tty = out.isTTY
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
      } else if (performance.now() - lastLine >= 5000 || done >= total) {
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

function printSummary (s: SeedSummary, jobs: number): void {
  const lines = [
    `seeded ${fmt(s.rows)} log rows (ids ${s.firstId}..${s.lastId}, ${isoMinute(s.start)} .. ${isoMinute(s.end)} UTC) in ${secs(s.seconds)}`,
    `  generate + COPY  ${secs(s.copySeconds)} (${fmt(s.rowsPerSecond)} rows/s)`
  ]
  if (s.indexSeconds !== undefined) lines.push(`  index rebuild    ${secs(s.indexSeconds)} (${s.indexesRebuilt} indexes, ${jobs} connections)`)
  lines.push(`  ANALYZE          ${secs(s.analyzeSeconds)}`)
  lines.push(`  logs size        table ${bytes(s.tableBytes)} + indexes ${bytes(s.indexBytes)} = ${bytes(s.totalBytes)}`)
  process.stdout.write(lines.join('\n') + '\n')
}

const options = parseOptions()
const config = loadConfig()
const pending = new Map<string, IndexDefinition>()
const reporter = consoleReporter(process.stdout, pending)

const database = await resolveDatabase(config, { url: options.databaseUrl, announce: (line) => process.stdout.write(`[seed] ${line}\n`) })
const url = database.url

const jobs = options.indexJobs ?? SEED_DEFAULTS.indexJobs
const pool = createPool({ connectionString: url, max: jobs + 1, statementTimeoutMs: 0, applicationName: 'log-service-seed' })
// pool.end() resolves before the sockets close, so stopping the embedded server right after can
// reach a connection still closing; without a listener its error would crash the process.
let closing = false
pool.on('error', (err) => { if (!closing) process.stderr.write(`[seed] idle connection: ${err.message}\n`) })
const db = createDb(pool)

process.once('SIGINT', () => {
  reporter.stop()
  process.stderr.write(interruptNotice(reporter.current(), pending))
  const stopped = database.stop()
  stopped.finally(() => process.exit(130)).catch(() => {})
})

if (options.dropIndexes !== true && options.rows >= 500_000) {
  process.stdout.write('[seed] tip: --drop-indexes makes a load this size several times faster (the trigram index is costly to maintain row by row)\n')
}

try {
  await migrateToLatest(db)
  const { databaseUrl: _url, ...seedOptions } = options
  const summary = await seedDatabase(pool, seedOptions, reporter)
  printSummary(summary, jobs)
} catch (err) {
  reporter.stop()
  process.stderr.write(`[seed] failed: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
} finally {
  closing = true
  // ends the pool too
  await db.destroy()
  await database.stop()
}
