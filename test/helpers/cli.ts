import { Writable } from 'node:stream'
import { runCli } from '../../src/cli/main.js'
import { createDb, createPool } from '../../src/db/pool.js'
import { createTestDatabase } from './app.js'

// The CLI run in-process, as `log-service <argv>` would run, with its output captured.

export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

export interface CliRunOptions {
  /** the whole environment the run sees (default: none, so the machine's DATABASE_URL cannot leak in) */
  env?: NodeJS.ProcessEnv
  signal?: AbortSignal
  /** called with everything written to stderr so far, after each write */
  onStderr?: (text: string) => void
}

function capture (onWrite?: (text: string) => void): { stream: Writable, text: () => string } {
  let text = ''
  const stream = new Writable({
    write (chunk: Buffer | string, _encoding, done) {
      text += chunk.toString()
      onWrite?.(text)
      done()
    }
  })
  return { stream, text: () => text }
}

export async function cli (argv: string[], opts: CliRunOptions = {}): Promise<CliRun> {
  const out = capture()
  const err = capture(opts.onStderr)
  const code = await runCli(argv, { stdout: out.stream, stderr: err.stream, env: opts.env ?? {}, signal: opts.signal, progressIntervalMs: 0 })
  return { code, stdout: out.text(), stderr: err.text() }
}

/** A database of its own for a CLI run, and a Kysely handle on it for checking what the CLI wrote. */
export async function cliDatabase (t: { teardown: (fn: () => unknown) => void }) {
  const url = await createTestDatabase(t)
  // No statement timeout: a check may wait on a purge's locks.
  const pool = createPool({ connectionString: url, max: 2, statementTimeoutMs: 0 })
  // The database is dropped with (force) at teardown, which ends idle connections.
  pool.on('error', () => {})
  const db = createDb(pool)
  t.teardown(() => db.destroy())
  return { url, db }
}
