// The whole harness against a tiny database: the service and the baselines as child processes, a
// short run per endpoint, the ILIKE comparison and the purge. Asserts what answered, never timings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { ENDPOINT_NAMES } from '../../bench/endpoints.js'
import { runBench } from '../../bench/harness.js'
import { SetupError, type BenchOptions } from '../../bench/options.js'
import { createTestDatabase, testConfig } from '../helpers/app.js'
import { insertTinyData } from './fixtures/tiny-data.js'

t.test('a short run answers every endpoint with 2xx and writes the report', async (t) => {
  const url = await createTestDatabase(t)
  const app = await buildApp({ ...testConfig(), DATABASE_URL: url })
  const data = await insertTinyData(app.db)
  await app.close()

  const dir = mkdtempSync(path.join(tmpdir(), 'bench-smoke-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const options: BenchOptions = {
    databaseUrl: url,
    // A moment of warm-up: on a loaded machine an endpoint's first answer (a new connection,
    // its statements prepared) took longer than a 0.3 s run, which then counted no answer at all.
    duration: 0.5,
    connections: 2,
    warmup: 0.5,
    out: path.join(dir, 'report.json'),
    only: null,
    skipPurge: false,
    rows: null,
    purgeReadersRate: null,
    vacuum: true
  }

  await t.rejects(runBench({ ...options, rows: data.rows + 1 }, () => {}), SetupError, 'too few rows: told to seed')
  await t.rejects(runBench({ ...options, rows: data.rows + 1 }, () => {}), /npm run seed -- --rows/)

  const lines: string[] = []
  const outcome = await runBench({ ...options, rows: data.rows }, (line) => lines.push(line))

  for (const name of ENDPOINT_NAMES) {
    const r = outcome.results.find((r) => r.name === name)
    t.ok(r?.stats, `${name} ran`)
    t.ok((r?.stats?.ok ?? 0) > 0, `${name} answered 2xx`)
    t.equal(r?.stats?.non2xx, 0, `${name}: no other status (${JSON.stringify(r?.stats?.statusCodes)})`)
    t.equal(r?.stats?.errors, 0, `${name}: no connection errors`)
  }

  const report = JSON.parse(readFileSync(options.out, 'utf8'))
  t.strictSame(Object.keys(report.endpoints), [...ENDPOINT_NAMES])
  t.match(report, {
    database: { rows: data.rows },
    machine: { cpus: Number, node: process.version, postgres: /PostgreSQL/ },
    ilike: { matches: Number, unindexed_plan: String, indexed_plan: String },
    purge: { status: 200, deleted_rows: Number },
    rss: { before_mb: Number, after_mb: Number },
    service: { warnings: 0 },
    settle: { vacuum_s: Number }
  })
  t.equal(report.endpoints.naive.naive_ratio, 1)
  t.ok(report.purge.deleted_rows > 0 && report.purge.deleted_rows === report.purge.expected_rows, 'the purge deleted the oldest 30 %')
  t.equal(report.purge.readers_during.non2xx + report.purge.readers_before.non2xx, 0, 'readers kept getting 200 during the purge')
  t.notOk(JSON.stringify(report).includes(data.heavy.token), 'no access token in the report')
  t.match(outcome.table, /self_list_cursor_deep/)
  t.ok(lines.some((l) => l.includes('purge')))
})
