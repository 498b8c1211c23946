import type { Kysely } from 'kysely'
import type pg from 'pg'
import cliProgress from 'cli-progress'
import { Option } from 'commander'
import { loadConfig, type Config } from '../config.js'
import { migrateToLatest } from '../db/migrate.js'
import { createDb, createPool } from '../db/pool.js'
import { resolveDatabase, type ResolvedDatabase } from '../db/resolve.js'
import type { Database } from '../db/types.js'

// What every command shares: where it writes, how it fails, the database it works on, its
// progress display and its Ctrl-C.

export type CliOutput = NodeJS.WritableStream & { isTTY?: boolean }

/** The outside world of one run: the process's own, or a test's. */
export interface CliIo {
  /** results (a new secret, a listing, the OpenAPI document) */
  stdout: CliOutput
  /** progress, notices and errors; a progress bar when it is a terminal */
  stderr: CliOutput
  /** configuration comes from here (PURGE_BATCH_SIZE, DATABASE_URL…), never from process.env directly */
  env: NodeJS.ProcessEnv
  /** aborts a purge or an export at its next batch boundary, as Ctrl-C does */
  signal?: AbortSignal
  /** without a terminal, a progress line at most this often */
  progressIntervalMs: number
}

/** A failure the CLI reports as one line and this exit code (1 failure, 2 bad usage, 130 interrupted). */
export class CliError extends Error {
  constructor (message: string, readonly exitCode = 1) {
    super(message)
  }
}

export class UsageError extends CliError {
  constructor (message: string) {
    super(message, 2)
  }
}

/** An error's message, without its stack; pg's connection failures can be an AggregateError with none. */
export function describeError (err: unknown): string {
  if (err instanceof AggregateError && err.message === '') return err.errors.map(describeError).join('; ')
  if (err instanceof Error) return err.message !== '' ? err.message : err.name
  return String(err)
}

export function cliConfig (io: CliIo): Config {
  try {
    return loadConfig(io.env)
  } catch (err) {
    throw new UsageError(`bad configuration in the environment: ${describeError(err)}`)
  }
}

export function databaseUrlOption (): Option {
  return new Option('--database-url <url>', 'PostgreSQL URL (default: DATABASE_URL, else the embedded PostgreSQL that npm start uses)')
}

export interface Session {
  config: Config
  db: Kysely<Database>
  pool: pg.Pool
  /** stopped by withDatabase at the end; an interrupted seed stops it itself */
  database: ResolvedDatabase
}

export interface SessionOptions {
  /** --database-url; else DATABASE_URL; else the embedded server, started and stopped here */
  url?: string
  /** apply pending migrations before `fn` (default true) */
  migrate?: boolean
  poolMax?: number
  applicationName?: string
}

/**
 * Runs `fn` on the command's database and always lets go of it: the pool ends, and an embedded
 * server this process started stops. No statement timeout: an operator's purge or export is
 * bounded by its batches and by Ctrl-C, not by the service's per-request limit.
 */
export async function withDatabase<T> (io: CliIo, opts: SessionOptions, fn: (session: Session) => Promise<T>): Promise<T> {
  const config = cliConfig(io)
  const database = await resolveDatabase(config, { url: opts.url, announce: (line) => io.stderr.write(`${line}\n`) })
  const pool = createPool({ connectionString: database.url, max: opts.poolMax ?? 2, statementTimeoutMs: 0, applicationName: opts.applicationName ?? 'log-service-cli' })
  // pool.end() resolves before the sockets close, so stopping the embedded server right after can
  // reach a connection still closing; without a listener its error would crash the process.
  let closing = false
  pool.on('error', (err) => { if (!closing) io.stderr.write(`idle database connection failed: ${err.message}\n`) })
  const db = createDb(pool)
  try {
    if (opts.migrate !== false) await migrateToLatest(db)
    return await fn({ config, db, pool, database })
  } finally {
    closing = true
    // ends the pool too
    await db.destroy()
    // Not in place of the command's own error: a Ctrl-C in a terminal may have stopped it already.
    await database.stop().catch((err: unknown) => { io.stderr.write(`stopping the embedded PostgreSQL failed: ${describeError(err)}\n`) })
  }
}

export interface Interrupt {
  signal: AbortSignal
  dispose: () => void
}

/**
 * Aborted by the first Ctrl-C (SIGINT), or by `io.signal`; a second Ctrl-C quits at once.
 * `dispose` gives SIGINT back to Node's default.
 */
export function interruptible (io: CliIo, stopping: string): Interrupt {
  const controller = new AbortController()
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130)
    io.stderr.write(`\n${stopping} (Ctrl-C again to quit at once)\n`)
    controller.abort()
  }
  const onAbort = () => { controller.abort() }
  process.on('SIGINT', onSigint)
  if (io.signal?.aborted === true) controller.abort()
  io.signal?.addEventListener('abort', onAbort, { once: true })
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSigint)
      io.signal?.removeEventListener('abort', onAbort)
    }
  }
}

export const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')

export interface Progress {
  update: (done: number) => void
  stop: () => void
}

/**
 * On a terminal, a progress bar with a rate and an ETA; otherwise (a pipe, CI, a log file) a line
 * at most every `io.progressIntervalMs`. `total` is an estimate: the bar grows if it is passed.
 */
export function startProgress (io: CliIo, label: string, unit: string, total: number): Progress {
  const out = io.stderr
  let bar: cliProgress.SingleBar | undefined
  let barTotal = Math.max(total, 1)
  if (out.isTTY === true) {
    bar = new cliProgress.SingleBar({
      stream: out,
      format: `${label} {bar} {percentage}% | {value}/{total} ${unit} | ETA {eta_formatted}`,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? fmt(v) : String(v)),
      etaBuffer: 20,
      hideCursor: true
    }, cliProgress.Presets.shades_classic)
    bar.start(barTotal, 0)
  }
  const started = performance.now()
  let lastLine = started
  return {
    update (done) {
      if (done > barTotal) {
        barTotal = done
        bar?.setTotal(barTotal)
      }
      if (bar !== undefined) {
        bar.update(done)
        return
      }
      const now = performance.now()
      if (now - lastLine < io.progressIntervalMs) return
      lastLine = now
      const rate = now > started ? fmt(done / ((now - started) / 1000)) : '-'
      out.write(`${label}: ${fmt(done)} / ${fmt(barTotal)} ${unit} (${(100 * done / barTotal).toFixed(1)} %), ${rate} ${unit}/s\n`)
    },
    stop () {
      bar?.stop()
      bar = undefined
    }
  }
}

/** Rows as aligned columns under a header, for listings. */
export function table (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd() + '\n'
  return line(header) + rows.map(line).join('')
}

/** PostgreSQL's unique violation (a taken username, a duplicate key). */
export function isUniqueViolation (err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23505'
}
