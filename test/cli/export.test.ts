// log-service export and seed: files with the right rows, generated data, bad options.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { sql, type SelectQueryBuilder } from 'kysely'
import type { Database } from '../../src/db/types.js'
import { csvRecord } from '../../src/lib/csv.js'
import { EXPORT_FIELDS } from '../../src/queries/logs/export.js'
import { cli, cliDatabase } from '../helpers/cli.js'
import { insertLogs } from '../helpers/app.js'

const T = 1_767_225_600 // 2026-01-01T00:00:00Z

type Tap = { teardown: (fn: () => unknown) => void }

function tempDir (t: Tap): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-export-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The first field of each CSV record after the header (no field here holds a line break). */
function csvIds (text: string): number[] {
  return text.split('\r\n').slice(1, -1).map((line) => Number(line.split(',')[0]))
}

t.test('export writes the matching rows, newest first, as CSV or NDJSON', async (t) => {
  const { url, db } = await cliDatabase(t)
  const dir = tempDir(t)
  const db_ = ['--database-url', url]
  t.equal((await cli(['channel', 'set', '3', 'east', ...db_])).code, 0)
  await insertLogs(db, Array.from({ length: 40 }, (_, i) => ({
    user_id: 1 + (i % 2),
    created_at: T + 60 * i,
    type: i % 4 === 0 ? 1 : 2,
    model_name: i % 3 === 0 ? 'gpt-a' : 'gpt-b',
    channel_id: i % 2 === 0 ? 3 : 0,
    content: i === 3 ? '=1+1, "quoted"' : `row ${i}`
  })))
  type Ids = SelectQueryBuilder<Database, 'logs', { id: number }>
  const expected = async (where: (q: Ids) => Ids) => (await where(db.selectFrom('logs').select('id')).orderBy('created_at', 'desc').orderBy('id', 'desc').execute()).map((r) => r.id)

  const csvFile = path.join(dir, 'a.csv')
  const csv = await cli(['export', '--out', csvFile, '--model-name', 'gpt-a', ...db_])
  t.equal(csv.code, 0, 'exit code 0')
  const text = readFileSync(csvFile, 'utf8')
  t.ok(text.startsWith(csvRecord(EXPORT_FIELDS.admin)), 'the header row of the admin export')
  t.strictSame(csvIds(text), await expected((q) => q.where('model_name', '=', 'gpt-a')))
  t.match(text, /,"'=1\+1, ""quoted""",/, 'cells neutralised and quoted as the route does')
  t.equal(csv.stdout, `wrote 14 rows to ${csvFile} (csv)\n`)
  t.match(csv.stderr, /exporting 14 rows/)
  t.strictSame(readdirSync(dir), ['a.csv'], 'no .part file left behind')

  const ndFile = path.join(dir, 'b.ndjson')
  const nd = await cli(['export', '--out', ndFile, '--format', 'ndjson', '--channel', '3', '--type', '2',
    '--start-timestamp', '2026-01-01T00:10', '--end-timestamp', String(T + 1800), ...db_])
  t.equal(nd.code, 0, 'exit code 0')
  const items = readFileSync(ndFile, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as { id: number, channel_name: string, created_at: number })
  t.strictSame(items.map((i) => i.id), await expected((q) => q.where('channel_id', '=', 3).where('type', '=', 2).where('created_at', '>=', T + 600).where('created_at', '<=', T + 1800)))
  t.ok(items.length > 0 && items.every((i) => i.channel_name === 'east'), 'channel names joined')
  t.strictSame(Object.keys(items[0] ?? {}), [...EXPORT_FIELDS.admin], 'the admin fields, in order')

  const bomFile = path.join(dir, 'c.csv')
  t.equal((await cli(['export', '--out', bomFile, '--bom', '--username', 'nobody', ...db_])).code, 0)
  t.equal(readFileSync(bomFile, 'utf8'), '\uFEFF' + csvRecord(EXPORT_FIELDS.admin), 'a BOM and the header, and no rows for an unknown username')

  const stoppedFile = path.join(dir, 'd.csv')
  const controller = new AbortController()
  controller.abort()
  const stopped = await cli(['export', '--out', stoppedFile, ...db_], { signal: controller.signal })
  t.equal(stopped.code, 130, 'stopped (as by Ctrl-C): exit code 130')
  t.match(stopped.stderr, /export stopped after 0 rows; nothing written to/)
  t.notOk(existsSync(stoppedFile) || existsSync(`${stoppedFile}.part`), 'no file, whole or partial')
})

t.test('export: bad options exit 2 (1 for an unwritable file), naming the option', async (t) => {
  const { url } = await cliDatabase(t)
  const dir = tempDir(t)
  const out = path.join(dir, 'x.csv')
  const cases: Array<[string[], number, RegExp]> = [
    [['--type', '9'], 2, /option '--type <n>' argument '9' is invalid\. must be between 0 and 7/],
    [['--start-timestamp', String(T + 10), '--end-timestamp', String(T)], 2, /--start-timestamp must not be after --end-timestamp/],
    [['--format', 'xml'], 2, /Allowed choices are csv, ndjson/],
    [['--format', 'ndjson', '--bom'], 2, /--bom is for --format csv only/],
    [['--model-name', 'm'.repeat(300)], 2, /--model-name: Expected string length less or equal to 255/],
    [['--request-id', 'r'.repeat(65)], 2, /--request-id: Expected string length less or equal to 64/],
    [['--channel', '-1'], 2, /option '--channel <id>' argument '-1' is invalid/],
    [['--out', path.join(dir, 'missing', 'x.csv')], 1, /cannot write .*missing.*ENOENT/]
  ]
  for (const [args, code, message] of cases) {
    const r = await cli(['export', '--out', out, ...args, '--database-url', url])
    t.equal(r.code, code, args.join(' ').slice(0, 60))
    t.match(r.stderr, message)
  }
  const noOut = await cli(['export', '--database-url', url])
  t.equal(noOut.code, 2)
  t.match(noOut.stderr, /required option '--out <file>' not specified/)
  t.strictSame(readdirSync(dir), [], 'nothing written')
})

t.test('seed fills the tables; --append adds rows; an export reads them all', async (t) => {
  const { url, db } = await cliDatabase(t)
  const dir = tempDir(t)
  const small = ['--users', '4', '--tokens-per-user', '1', '--models', '3', '--channels', '2', '--groups', '2', '--days', '2', '--end', '2026-01-01', '--database-url', url]
  const seeded = await cli(['seed', '--rows', '300', ...small])
  t.equal(seeded.code, 0, 'exit code 0')
  t.match(seeded.stdout, /^seeded 300 log rows \(ids 1\.\.300, 2025-12-30 00:00 \.\. 2026-01-01 00:00 UTC\)/)
  t.match(seeded.stderr, /\[seed\] copy: /, 'phases on stderr')
  const count = async (table: 'logs' | 'users' | 'tokens' | 'channels') =>
    Number((await sql<{ n: number }>`select count(*)::int8 as n from ${sql.table(table)}`.execute(db)).rows[0]?.n)
  t.strictSame([await count('logs'), await count('users'), await count('tokens'), await count('channels')], [300, 5, 4, 2], 'logs, 4 users and root, their keys, channels')
  const window = (await sql<{ lo: number, hi: number }>`select min(created_at) as lo, max(created_at) as hi from logs`.execute(db)).rows[0]
  t.ok(window !== undefined && window.lo >= T - 2 * 86_400 && window.hi < T, 'rows within the window')

  const appended = await cli(['seed', '--rows', '20', '--append', ...small])
  t.equal(appended.code, 0)
  t.strictSame([await count('logs'), await count('users')], [320, 5], '--append keeps what is there')

  const file = path.join(dir, 'all.ndjson')
  const all = await cli(['export', '--out', file, '--format', 'ndjson', '--database-url', url])
  t.equal(all.code, 0)
  t.equal(readFileSync(file, 'utf8').trimEnd().split('\n').length, 320)
  t.match(all.stderr, /export: 320 \/ 320 rows/, 'a progress line')

  for (const [args, message] of [
    [['--rows', '0'], /argument '0' is invalid\. must be between 1 and/],
    [[], /required option '--rows <n>' not specified/],
    [['--rows', '10', '--skew', 'abc'], /'abc' is invalid\. not a number/],
    [['--rows', '10', '--skew', '-1'], /skew must be a positive number/],
    [['--rows', '10', '--days', '400', '--end', '86400'], /end must be unix seconds/]
  ] as Array<[string[], RegExp]>) {
    const r = await cli(['seed', ...args, '--database-url', url])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, message)
  }
  t.equal(await count('logs'), 320, 'bad options touch nothing')
})
