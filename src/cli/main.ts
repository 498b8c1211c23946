import { readFileSync, realpathSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError } from 'commander'
import { registerChannelCommands } from './commands/channel.js'
import { registerExportCommand } from './commands/export.js'
import { registerMigrateCommand } from './commands/migrate.js'
import { registerOpenapiCommand } from './commands/openapi.js'
import { registerPurgeCommand } from './commands/purge.js'
import { registerSeedCommand } from './commands/seed.js'
import { registerTokenCommands } from './commands/token.js'
import { registerUserCommands } from './commands/user.js'
import { CliError, describeError, type CliIo } from './context.js'

// The operators' CLI (`log-service`, bin/log-service.js; `node --import tsx src/cli/main.ts`).
// Exit codes: 0 ok, 1 failure, 2 bad usage, 130 stopped by Ctrl-C.

const { version } = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }

/** The program for one run; commands write through `io`, so a test can run it in-process. */
export function buildProgram (io: CliIo): Command {
  const program = new Command('log-service')
    .description('Operate the log service: migrations, users, API keys, channels, test data, purge, export, OpenAPI document.')
    .version(version, '-V, --version')
    // Set before any subcommand is added: subcommands inherit these.
    .exitOverride()
    .configureOutput({ writeOut: (s) => { io.stdout.write(s) }, writeErr: (s) => { io.stderr.write(s) } })
    .showHelpAfterError('(add --help for usage)')
  program.addHelpText('after', '\nEvery command that uses the database takes --database-url; else DATABASE_URL; else the embedded PostgreSQL that npm start uses.')

  registerMigrateCommand(program, io)
  registerUserCommands(program, io)
  registerTokenCommands(program, io)
  registerChannelCommands(program, io)
  registerSeedCommand(program, io)
  registerPurgeCommand(program, io)
  registerExportCommand(program, io)
  registerOpenapiCommand(program, io)
  return program
}

/** Runs the CLI on `argv` (without node and the script) and returns its exit code; never exits the process. */
export async function runCli (argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const full: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, progressIntervalMs: 5000, ...io }
  try {
    await buildProgram(full).parseAsync([...argv], { from: 'user' })
    return 0
  } catch (err) {
    // Commander has printed its own message (or the help) already.
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    if (err instanceof CliError) {
      full.stderr.write(err.exitCode === 130 ? `${err.message}\n` : `error: ${err.message}\n`)
      return err.exitCode
    }
    full.stderr.write(`error: ${describeError(err)}\n`)
    return 1
  }
}

export async function main (argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  // `log-service openapi | head`: a reader that has seen enough is not a failure.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err
    process.exit(process.exitCode ?? 0)
  })
  process.exitCode = await runCli(argv)
}

/** Run as `node --import tsx src/cli/main.ts` (npm scripts), not imported (the bin, tests). */
function isEntryPoint (): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}

if (isEntryPoint()) await main()
