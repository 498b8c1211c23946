import path from 'node:path'
import { parseArgs } from 'node:util'
import { ENDPOINT_NAMES } from './endpoints.js'

export const PHASES = ['ilike', 'purge'] as const
export const SELECTABLE = [...ENDPOINT_NAMES, ...PHASES] as const

export interface BenchOptions {
  databaseUrl: string
  /** seconds of measured load per endpoint */
  duration: number
  connections: number
  /** seconds of unmeasured load per endpoint first */
  warmup: number
  out: string
  /** endpoint names and phases (ilike, purge) to run; null = all */
  only: string[] | null
  skipPurge: boolean
  /** the table must hold at least this many rows */
  rows: number | null
  /** readers' req/s during the purge phase; null = half the self_list throughput measured */
  purgeReadersRate: number | null
  /** VACUUM (ANALYZE) the database once the service is up, before measuring */
  vacuum: boolean
}

export class UsageError extends Error {
  override name = 'UsageError'
}

/** The database is not ready for a run (no table, too few rows): a message, not the usage text. */
export class SetupError extends Error {
  override name = 'SetupError'
}

export const USAGE = `Usage: npm run bench -- [options]

Drives every read endpoint of the log service (started here as a child process) with autocannon,
next to two baselines, then times a purge of 30 % of the table. Needs a migrated, seeded database
(npm run seed -- --rows N); the purge DELETES those rows.

  --database-url URL      PostgreSQL URL (default: $DATABASE_URL)
  --duration S            measured seconds per endpoint (default 10)
  --connections N         concurrent connections (default 50)
  --warmup S              unmeasured seconds per endpoint before each run (default 3)
  --out FILE              JSON report (default bench/out/<timestamp>.json)
  --only A,B              only these: ${SELECTABLE.join(', ')}
  --skip-purge            leave the table as it is
  --rows N                require at least N rows (1M, 10M and 200k are understood)
  --purge-readers-rate R  readers' req/s around the purge, evenly paced (default: half of self_list's
                          req/s, or 100 when self_list is not run)
  --no-vacuum             do not VACUUM (ANALYZE) the database before measuring
  --help`

export function parseCount (raw: string, name: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([kKmM]?)$/.exec(raw.trim().replace(/_/g, ''))
  if (m === null) throw new UsageError(`${name} must be a number, got '${raw}'`)
  const scale = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6 }[m[2] as '' | 'k' | 'K' | 'm' | 'M']
  return Math.round(Number(m[1]) * scale)
}

function number (raw: string | undefined, name: string, fallback: number, min: number): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`${name} must be a number >= ${min}, got '${raw}'`)
  return n
}

export function defaultOut (now = new Date()): string {
  return path.join(import.meta.dirname, 'out', `${now.toISOString().replace(/[:.]/g, '-')}.json`)
}

/** argv (without node and the script) → options; throws UsageError with a message for the user. */
export function parseOptions (argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions | 'help' {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'database-url': { type: 'string' },
        duration: { type: 'string' },
        connections: { type: 'string' },
        warmup: { type: 'string' },
        out: { type: 'string' },
        only: { type: 'string' },
        'skip-purge': { type: 'boolean' },
        rows: { type: 'string' },
        'purge-readers-rate': { type: 'string' },
        'no-vacuum': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    }))
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err))
  }
  if (values.help === true) return 'help'

  const databaseUrl = values['database-url'] ?? env.DATABASE_URL
  if (databaseUrl === undefined || databaseUrl === '') throw new UsageError('--database-url or DATABASE_URL is required (the harness does not seed: npm run seed first)')

  let only: string[] | null = null
  if (values.only !== undefined) {
    only = values.only.split(',').map((s) => s.trim()).filter(Boolean)
    const unknown = only.filter((n) => !(SELECTABLE as readonly string[]).includes(n))
    if (unknown.length > 0 || only.length === 0) throw new UsageError(`--only takes a comma-separated list of: ${SELECTABLE.join(', ')}${unknown.length > 0 ? ` (unknown: ${unknown.join(', ')})` : ''}`)
  }

  const connections = number(values.connections, '--connections', 50, 1)
  if (!Number.isInteger(connections)) throw new UsageError('--connections must be an integer')
  const rate = values['purge-readers-rate']

  return {
    databaseUrl,
    duration: number(values.duration, '--duration', 10, 0.1),
    connections,
    warmup: number(values.warmup, '--warmup', 3, 0),
    out: values.out === undefined ? defaultOut() : path.resolve(values.out),
    only,
    skipPurge: values['skip-purge'] === true,
    rows: values.rows === undefined ? null : parseCount(values.rows, '--rows'),
    purgeReadersRate: rate === undefined ? null : number(rate, '--purge-readers-rate', 0, 1),
    vacuum: values['no-vacuum'] !== true
  }
}

/** Whether an endpoint or phase is selected by --only (and, for the purge, not skipped). */
export function selected (o: Pick<BenchOptions, 'only' | 'skipPurge'>, name: string): boolean {
  if (name === 'purge' && o.skipPurge) return false
  return o.only === null || o.only.includes(name)
}

/** The URL with its password masked, for the report. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}
