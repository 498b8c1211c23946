// A client generated from the committed openapi.json, used as an integrator would: openapi-typescript
// writes schema.d.ts, client-program/program.ts calls every operation through openapi-fetch, the
// TypeScript compiler checks it under --strict, and it runs against the real app over HTTP.
import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
// openapi-typescript declares typescript ^5 as its peer; package.json's `overrides` hands it the
// project's TypeScript 6, which drives the same factory API: its output for this document is
// byte-identical to what TypeScript 5.9 produces (compared when the override was added).
import openapiTS, { astToString } from 'openapi-typescript'
import ts from 'typescript'
import { ERROR_CODES } from '../../src/errors.js'
import { withoutChildCoverage } from '../../src/lib/child-process.js'
import { buildTestApp, createApiKey, createUser, insertLogs } from '../helpers/app.js'

const root = path.join(import.meta.dirname, '..', '..')
const programSource = path.join(import.meta.dirname, 'client-program', 'program.ts')

interface Operation { operationId: string, method: string, path: string }

function documentOperations (): Operation[] {
  const doc = JSON.parse(readFileSync(path.join(root, 'openapi.json'), 'utf8')) as { paths: Record<string, Record<string, { operationId: string }>> }
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ operationId: op.operationId, method: method.toUpperCase(), path })))
}

/** A user's project in a temporary directory: the generated schema, the program, the repo's node_modules. */
async function clientProject (t: { teardown: (fn: () => void) => void }): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'openapi-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ast = await openapiTS(pathToFileURL(path.join(root, 'openapi.json')))
  writeFileSync(path.join(dir, 'schema.d.ts'), astToString(ast))
  copyFileSync(programSource, path.join(dir, 'program.ts'))
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
  return dir
}

// What `tsc --strict` gives a user on Node with ESM, plus the project's noUncheckedIndexedAccess so
// an indexed read must be handled as possibly absent. skipLibCheck is off so that the generated
// schema.d.ts gets checked; the diagnostics asked for are those of our files only, since checking
// every library's declarations (@types/node's above all) takes some 20 s and tests none of ours.
const compilerOptions: ts.CompilerOptions = {
  strict: true,
  noUncheckedIndexedAccess: true,
  noEmit: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  skipLibCheck: false
}

const formatHost: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (name) => name,
  getCurrentDirectory: () => root,
  getNewLine: () => '\n'
}

// Programs that must not compile, one mistake each, so a check that always passes would show.
const wrongPrograms: Record<string, string> = {
  'wrong-parameter.ts': "await client.GET('/api/log/self', { params: { query: { page_sise: 10 } } })",
  'wrong-parameter-type.ts': "await client.GET('/api/log/self', { params: { query: { page_size: '10' } } })",
  'missing-required.ts': "await client.GET('/api/log/search', { params: { query: {} } })",
  'wrong-path.ts': "await client.GET('/api/logs/self')",
  'wrong-field.ts': "const { data } = await client.GET('/api/log/self')\nconsole.log(data?.data.itemz)",
  'unknown-code.ts': "const { error } = await client.GET('/api/log/self')\nif (error?.code === 'LOG_NOPE') console.log(error.message)"
}

// Casts and `any` would let the program compile whatever the schema says.
function escapeHatches (file: ts.SourceFile): string[] {
  const found: string[] = []
  const visit = (node: ts.Node) => {
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node) || ts.isNonNullExpression(node) || node.kind === ts.SyntaxKind.AnyKeyword) {
      found.push(`line ${file.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${node.getText()}`)
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  if (/@ts-(ignore|expect-error|nocheck)/.test(file.text)) found.push('a @ts- directive')
  return found
}

t.test('a client generated from openapi.json type-checks under --strict', async (t) => {
  const dir = await clientProject(t)
  for (const [name, body] of Object.entries(wrongPrograms)) {
    writeFileSync(path.join(dir, name), `import createClient from 'openapi-fetch'\nimport type { paths } from './schema.js'\nconst client = createClient<paths>({ baseUrl: 'http://127.0.0.1' })\n${body}\n`)
  }
  const wrongNames = Object.keys(wrongPrograms)
  const program = ts.createProgram([path.join(dir, 'program.ts'), ...wrongNames.map((name) => path.join(dir, name))], compilerOptions)
  const diagnosticsOf = (name: string) => {
    const file = program.getSourceFile(path.join(dir, name))
    if (file === undefined) throw new Error(`${name} is not in the program`)
    return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)]
  }

  const ofProgram = [
    ...program.getOptionsDiagnostics(),
    ...diagnosticsOf('program.ts'),
    ...diagnosticsOf('schema.d.ts'),
    ...program.getGlobalDiagnostics()
  ]
  t.equal(ofProgram.length, 0, 'program.ts and schema.d.ts: no diagnostic')
  if (ofProgram.length > 0) t.comment(ts.formatDiagnostics(ofProgram, formatHost))

  for (const name of wrongNames) {
    const found = diagnosticsOf(name)
    t.ok(found.length > 0, `${name} does not compile: ${found.map((d) => `TS${d.code}`).join(', ')}`)
  }
  t.match(ts.flattenDiagnosticMessageText(diagnosticsOf('wrong-parameter.ts')[0]?.messageText, '\n'), /page_sise/, 'the wrong name is the one reported')

  const source = program.getSourceFile(path.join(dir, 'program.ts'))
  t.ok(source, 'program.ts is in the program')
  if (source !== undefined) t.strictSame(escapeHatches(source), [], 'no cast, no non-null assertion, no any, no @ts- directive')
})

t.test('the program calls every operation of the real app and reads typed answers', async (t) => {
  const dir = await clientProject(t)
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10, username: 'client_admin' })
  const user = await createUser(app.db, { username: 'client_user' })
  const other = await createUser(app.db, { username: 'client_other' })
  const key = await createApiKey(app.db, user.id, { name: 'alpha' })

  const since = 1_700_000_000
  const [ancient, hello, second, noKey, stranger] = await insertLogs(app.db, [
    { user_id: user.id, username: user.username, created_at: since - 1000, type: 2, content: 'ancient', quota: 1 },
    { user_id: user.id, username: user.username, created_at: since + 1, type: 2, token_id: key.id, token_name: 'alpha', content: 'hello client', quota: 100 },
    { user_id: user.id, username: user.username, created_at: since + 2, type: 2, token_id: key.id, token_name: 'alpha', content: 'second call', quota: 200 },
    { user_id: user.id, username: user.username, created_at: since + 3, type: 2, content: 'no key', quota: 300 },
    { user_id: other.id, username: other.username, created_at: since + 4, type: 2, content: 'hello stranger', quota: 400, ip: '203.0.113.7' }
  ])

  // Recorded where requests reach the server, so an operation counts as called only when it answered.
  const answered: Array<{ method: string, path: string, status: number }> = []
  app.server.on('request', (req, res) => {
    res.on('finish', () => {
      answered.push({ method: req.method ?? '', path: new URL(req.url ?? '/', 'http://x').pathname, status: res.statusCode })
    })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo

  const run = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(dir, 'program.ts')], {
    cwd: dir,
    timeout: 30_000,
    env: withoutChildCoverage({
      ...process.env,
      LOG_API_URL: `http://127.0.0.1:${port}`,
      LOG_ADMIN_ID: String(admin.id),
      LOG_ADMIN_TOKEN: admin.token,
      LOG_USER_ID: String(user.id),
      LOG_USER_TOKEN: user.token,
      LOG_API_KEY: key.key,
      LOG_SINCE: String(since),
      LOG_KEYWORD: 'hello'
    })
  }).catch((err: { message: string, stdout?: string, stderr?: string }) => ({ stdout: '', stderr: `${err.message}\n${err.stderr ?? ''}` }))
  t.equal(run.stderr, '', 'the program ran without an error')
  const report = JSON.parse(run.stdout.trim() === '' ? 'null' : run.stdout)

  t.test('every operation of the document answered 2xx', async (t) => {
    const operations = documentOperations()
    // A path template's {param} matches one segment.
    const matches = (op: Operation, call: { method: string, path: string }) => op.method === call.method &&
      new RegExp(`^${op.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(call.path)
    const missing = operations
      .filter((op) => !answered.some((call) => matches(op, call) && call.status >= 200 && call.status < 300))
      .map((op) => `${op.operationId} (${op.method} ${op.path})`)
    t.strictSame(missing, [], 'no operation left uncalled (add a call to client-program/program.ts)')
    t.strictSame(Object.keys(report ?? {}).filter((k) => k !== 'errors').sort(), operations.map((op) => op.operationId).sort(), 'the report has an entry per operationId')
  })

  t.test('the typed answers are the seeded rows', async (t) => {
    t.match(report, {
      healthz: { status: 200, health: 'ok' },
      readyz: { status: 200, database: 'ok', migrations: 'current' },
      metrics: { status: 200, contentType: /^text\/plain/, healthzCounted: true },
      listSelfLogs: { status: 200, ids: [noKey, second, hello, ancient], firstContent: 'no key', total: 4, totalExact: true, cursorPageIds: [second] },
      getSelfLogStat: { status: 200, quota: 600, rpm: 0, tpm: 0 },
      searchSelfLogs: { status: 200, contents: ['hello client'] },
      listLogs: { status: 200, ids: [stranger, noKey, second, hello, ancient], usernames: ['client_other', 'client_user', 'client_user', 'client_user', 'client_user'], total: 5 },
      getLogStat: { status: 200, quota: 1000, rpm: 0, tpm: 0 },
      searchLogs: { status: 200, ids: [stranger, hello], ips: ['203.0.113.7', ''] },
      listTokenLogs: { status: 200, byKey: [second, hello], byBearer: [second, hello], rateLimitRemaining: /^\d+$/ },
      exportLogs: { status: 200, ids: [stranger, noKey, second, hello], disposition: /^attachment; filename="logs-\d+\.ndjson"$/ },
      exportSelfLogs: { status: 200, header: 'id,user_id,created_at,type,content,token_name,model_name,quota,prompt_tokens,completion_tokens,use_time,is_stream,group,request_id', records: 4 },
      ingestLogs: { status: 200, written: 1 },
      preflightTokenLogs: { status: 204, allowOrigin: '*', allowHeaders: /Authorization/ },
      deleteHistoryLogs: { status: 200, deleted: 1 }
    })
  })

  t.test('errors arrive as the envelope, with a code from the enum', async (t) => {
    t.strictSame(report?.errors, {
      forbidden: { status: 403, code: 'LOG_FORBIDDEN' },
      unauthenticated: { status: 401, code: 'LOG_UNAUTHORIZED' },
      badParameter: { status: 400, code: 'LOG_BAD_PARAMETER' }
    })
    for (const { code } of Object.values<{ code: string }>(report?.errors ?? {})) {
      t.ok((ERROR_CODES as readonly string[]).includes(code), `${code} is documented`)
    }
  })
})
