// The program itself: help for every command, the OpenAPI document, argument parsers, and the real
// bin/log-service.js as a child process.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import type { Command } from 'commander'
import { buildProgram } from '../../src/cli/main.js'
import { parseRole, parseTime } from '../../src/cli/parse.js'
import { generateApiKey } from '../../src/cli/commands/token.js'
import { withoutChildCoverage } from '../../src/lib/child-process.js'
import { cli } from '../helpers/cli.js'
import { createTestDatabase } from '../helpers/app.js'

const BIN = path.join(import.meta.dirname, '..', '..', 'bin', 'log-service.js')

/** Every command under `command`, with the words that reach it. */
function commandsOf (command: Command, words: string[] = []): Array<{ words: string[], command: Command }> {
  return command.commands.flatMap((c) => [{ words: [...words, c.name()], command: c }, ...commandsOf(c, [...words, c.name()])])
}

t.test('--help for every command and subcommand names all its options', async (t) => {
  const io = { stdout: process.stdout, stderr: process.stderr, env: {}, progressIntervalMs: 0 }
  const all = commandsOf(buildProgram(io))
  t.strictSame(all.map((c) => c.words.join(' ')).sort(), [
    'channel', 'channel list', 'channel set', 'export', 'migrate', 'openapi', 'purge', 'seed',
    'token', 'token create', 'token disable', 'token list',
    'user', 'user create', 'user disable', 'user enable', 'user list', 'user set-role'
  ], 'the commands the CLI offers')
  for (const { words, command } of all) {
    const r = await cli([...words, '--help'])
    t.equal(r.code, 0, `${words.join(' ')} --help`)
    t.match(r.stdout, `Usage: log-service ${words.join(' ')}`)
    for (const option of command.options) t.match(r.stdout, option.long ?? option.flags, `${words.join(' ')} --help mentions ${option.flags}`)
    if (command.commands.length === 0 && words[0] !== 'openapi') t.match(r.stdout, '--database-url <url>', 'takes --database-url')
  }
  const top = await cli(['--help'])
  t.equal(top.code, 0)
  for (const name of ['migrate', 'user', 'token', 'channel', 'seed', 'purge', 'export', 'openapi']) t.match(top.stdout, new RegExp(`\\n  ${name}`))
  t.equal((await cli(['help', 'purge'])).code, 0, 'help <command> too')
})

t.test('openapi prints the OpenAPI 3 document, or writes it with --out', async (t) => {
  const r = await cli(['openapi'])
  t.equal(r.code, 0)
  const doc = JSON.parse(r.stdout) as { openapi: string, paths: Record<string, unknown> }
  t.match(doc.openapi, /^3\.[0-9]+\.[0-9]+$/)
  t.ok('/api/log/' in doc.paths, 'with the API routes')

  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-openapi-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'openapi.json')
  const written = await cli(['openapi', '--out', file])
  t.equal(written.code, 0)
  t.equal(written.stdout, `wrote ${file}\n`)
  t.strictSame(JSON.parse(readFileSync(file, 'utf8')), doc, 'the same document')
})

t.test('argument parsers', async (t) => {
  t.equal(parseTime('1700000000'), 1_700_000_000, 'unix seconds')
  t.equal(parseTime('2026-01-01'), 1_767_225_600, 'a date is midnight UTC')
  t.equal(parseTime('2026-01-01T08:30'), 1_767_225_600 + 8 * 3600 + 1800, 'a date-time without offset is UTC')
  t.equal(parseTime('2026-01-01 08:30:15Z'), 1_767_225_600 + 8 * 3600 + 1815)
  t.equal(parseTime('2026-01-01T08:00:00+08:00'), 1_767_225_600, 'an offset is honoured')
  t.equal(parseTime('2025-12-31T19:00-0500'), 1_767_225_600)
  for (const bad of ['2026-02-29', '2026-13-01', '2026-01-01T24:00', '2026-01-01T12:60', 'yesterday', '', '1.5', '-5', '1969-12-31']) {
    t.throws(() => parseTime(bad), { code: 'commander.invalidArgument' }, `'${bad}' is refused`)
  }
  t.strictSame(['user', 'common', 'Admin', 'root', '1', '10', '100'].map(parseRole), [1, 1, 10, 100, 1, 10, 100])
  for (const bad of ['0', '2', 'guest', '10.0', '']) t.throws(() => parseRole(bad), { message: /unknown role/ }, `role '${bad}' is refused`)
  const keys = Array.from({ length: 200 }, () => generateApiKey())
  t.ok(keys.every((k) => /^[A-Za-z0-9]{48}$/.test(k)), '48 letters and digits')
  t.equal(new Set(keys).size, keys.length, 'all different')
  t.equal(new Set(keys.join('')).size, 62, 'every letter and digit occurs')
})

/** Runs the real bin as a child process; its exit code and output. */
async function runBin (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: withoutChildCoverage({ ...process.env, DATABASE_URL: '' }), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  return { code, stdout, stderr }
}

t.test('the bin: a real process with real exit codes', async (t) => {
  const help = await runBin(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: log-service \[options\] \[command\]/)

  const url = await createTestDatabase(t)
  const created = await runBin(['user', 'create', 'grace', '--role', 'admin', '--database-url', url])
  t.equal(created.code, 0, 'user create exits 0')
  t.match(created.stdout, /^created user [0-9]+ 'grace', role 10 \(admin\)\naccess token \(shown this once only\): [0-9a-f]{32}\n/)

  const bad = await runBin(['user', 'set-role', 'grace', 'wizard', '--database-url', url])
  t.equal(bad.code, 2, 'bad usage exits 2')
  t.match(bad.stderr, /unknown role/)
})
