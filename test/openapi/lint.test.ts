import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { buildTestApp } from '../helpers/app.js'

// The document clients are generated from, linted as an integrator's CI would: Redocly's
// recommended rules (redocly.yaml) and Spectral's OpenAPI ruleset (.spectral.yaml), with no error
// and no warning.

const root = path.join(import.meta.dirname, '..', '..')
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name)
const run = async (file: string, args: string[]) => await promisify(execFile)(file, args, { cwd: root, maxBuffer: 16 * 1024 * 1024 })
  .catch((err: { stdout?: string, stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }))

t.test('the generated document lints clean', async (t) => {
  const app = await buildTestApp(t, { PUBLIC_URL: 'https://logs.gateway.test' })
  const doc = (await app.inject({ url: '/openapi.json' })).json()
  t.strictSame(doc.servers?.map((s: { url: string }) => s.url), ['https://logs.gateway.test'], 'the server is PUBLIC_URL')
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'openapi-')), 'openapi.json')
  writeFileSync(file, JSON.stringify(doc))

  t.test('Redocly, recommended rules', async (t) => {
    const { stdout } = await run(bin('redocly'), ['lint', file, '--format', 'json'])
    const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { totals: { errors: number, warnings: number }, problems: Array<{ ruleId: string, message: string }> }
    t.strictSame(report.problems.map((p) => `${p.ruleId}: ${p.message}`), [], 'no problem')
    t.match(report.totals, { errors: 0, warnings: 0 })
  })

  t.test('Spectral, spectral:oas', async (t) => {
    const { stdout } = await run(bin('spectral'), ['lint', file, '--format', 'json', '--quiet'])
    const results = JSON.parse(stdout.trim() === '' ? '[]' : stdout) as Array<{ code: string, message: string, severity: number }>
    t.strictSame(results.filter((r) => r.severity <= 1).map((r) => `${r.code}: ${r.message}`), [], 'no error, no warning')
  })
})

t.test('the paths are the contract\'s, as it writes them', async (t) => {
  const app = await buildTestApp(t)
  const paths = Object.keys((await app.inject({ url: '/openapi.json' })).json().paths).sort()
  t.strictSame(paths, ['/api/log/', '/api/log/export', '/api/log/search', '/api/log/self', '/api/log/self/export', '/api/log/self/search', '/api/log/self/stat', '/api/log/stat', '/api/log/token', '/healthz', '/metrics', '/readyz'])
  t.equal((await app.inject({ url: '/api/log' })).statusCode, 401, '/api/log without the slash still reaches the route')
})

t.test('without PUBLIC_URL the server is the listen address', async (t) => {
  const app = await buildTestApp(t, { HOST: '127.0.0.1', PORT: 3123 })
  t.strictSame((await app.inject({ url: '/openapi.json' })).json().servers, [{ url: 'http://127.0.0.1:3123', description: 'this service' }])
})
