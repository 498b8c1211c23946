// node --import tsx bench/export.ts --database-url postgres://…/<a copy of a seeded database>
//
// The export routes against a seeded table: the service runs as a child process (as production
// starts it); an admin exports every row as CSV and as NDJSON, and the rows of the most common
// model; the heaviest user exports their own rows. The service's RSS (/proc/<pid>/status) and CPU
// time (/proc/<pid>/stat) are sampled throughout. The baseline in the same run reads the same rows
// through the admin list with its keyset cursor, page after page, as a client without the export
// route would. Reads only, except for creating bench_admin when no admin has an access token.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { readRss, startService, type ChildServer } from './processes.js'

interface Run {
  name: string
  rows: number
  bytes: number
  seconds: number
  rows_per_sec: number
  first_byte_ms: number
  rss_mb: { before: number, peak: number, after: number }
  /** the service's CPU time per row exported, µs */
  service_cpu_us_per_row: number
  requests: number
}

const { values: args } = parseArgs({
  options: {
    'database-url': { type: 'string', default: process.env.DATABASE_URL },
    repeat: { type: 'string', default: '2' },
    'baseline-rows': { type: 'string', default: '1000000' },
    out: { type: 'string' },
    'no-vacuum': { type: 'boolean', default: false }
  }
})
const databaseUrl = args['database-url']
if (databaseUrl === undefined) throw new Error('--database-url (or DATABASE_URL) is required: a copy of a seeded database, e.g. `create database bench_export template bench_template`')
const repeat = Number(args.repeat)
const baselineRows = Number(args['baseline-rows'])

/** utime + stime of a process, ms (Linux). */
function cpuMs (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / 100
}

/** Samples the service's RSS every 20 ms while `fn` runs. */
async function sampled<T> (pid: number, fn: () => Promise<T>): Promise<{ result: T, rss: Run['rss_mb'], cpu: number }> {
  const before = readRss(pid)?.rssMb ?? NaN
  let peak = before
  const timer = setInterval(() => { peak = Math.max(peak, readRss(pid)?.rssMb ?? 0) }, 20)
  const cpu0 = cpuMs(pid)
  try {
    const result = await fn()
    return { result, rss: { before, peak, after: readRss(pid)?.rssMb ?? NaN }, cpu: cpuMs(pid) - cpu0 }
  } finally {
    clearInterval(timer)
  }
}

/** Streams one export to nowhere, counting line feeds (no field of the seeded rows holds one). */
async function streamExport (url: string, headers: Record<string, string>): Promise<{ lines: number, bytes: number, firstByteMs: number }> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new Error(`${url}: status ${res.statusCode}`))
        return
      }
      let lines = 0
      let bytes = 0
      let firstByteMs = -1
      res.on('data', (chunk: Buffer) => {
        if (firstByteMs < 0) firstByteMs = performance.now() - started
        bytes += chunk.length
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
      })
      res.on('end', () => resolve({ lines, bytes, firstByteMs }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** The baseline: the same rows through GET /api/log/ with the cursor, 100 a page (the list's most). */
async function pageThrough (base: string, headers: Record<string, string>, maxRows: number): Promise<{ lines: number, bytes: number, firstByteMs: number, requests: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const started = performance.now()
  let cursor: string | null = null
  let rows = 0
  let bytes = 0
  let requests = 0
  let firstByteMs = -1
  do {
    const query = new URLSearchParams({ page_size: '100', ...(cursor === null ? {} : { cursor }) })
    const body: string = await new Promise((resolve, reject) => {
      http.get(`${base}/api/log/?${query}`, { headers, agent }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => { text += c })
        res.on('end', () => res.statusCode === 200 ? resolve(text) : reject(new Error(`list: ${res.statusCode} ${text}`)))
      }).on('error', reject)
    })
    if (firstByteMs < 0) firstByteMs = performance.now() - started
    requests++
    bytes += Buffer.byteLength(body)
    const data = (JSON.parse(body) as { data: { items: unknown[], next_cursor: string | null } }).data
    rows += data.items.length
    cursor = data.next_cursor
  } while (cursor !== null && rows < maxRows)
  agent.destroy()
  return { lines: rows, bytes, firstByteMs, requests }
}

async function benchAdmin (client: pg.Client): Promise<{ id: number, token: string }> {
  const { rows: [found] } = await client.query<{ id: number, token: string }>(`
    select id, access_token as token from users
    where role >= 10 and status = 1 and access_token is not null and access_token <> '' order by role desc, id limit 1`)
  if (found !== undefined) return found
  const token = `bench-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`
  const { rows: [made] } = await client.query<{ id: number }>(`
    insert into users (username, display_name, role, status, access_token) values ('bench_admin', 'benchmark admin', 100, 1, $1)
    on conflict (username) do update set role = 100, status = 1, access_token = excluded.access_token returning id`, [token])
  return { id: made!.id, token }
}

const client = new pg.Client({ connectionString: databaseUrl })
await client.connect()
const tableRows = Number((await client.query<{ n: string }>('select count(*)::int8 as n from logs')).rows[0]?.n ?? 0)
const admin = await benchAdmin(client)
const { rows: [heavy] } = await client.query<{ id: number, token: string, n: string }>(`
  select u.id, u.access_token as token, c.n from users u
  join (select user_id, count(*) as n from logs group by user_id order by n desc limit 1) c on c.user_id = u.id
  where u.access_token is not null and u.status = 1`)
const { rows: [model] } = await client.query<{ model_name: string, n: string }>('select model_name, count(*) as n from logs group by 1 order by 2 desc limit 1')
if (args['no-vacuum'] !== true) await client.query('vacuum (analyze) logs')
await client.end()

const headersOf = (user: { id: number, token: string }) => ({ authorization: `Bearer ${user.token}`, 'new-api-user': String(user.id) })
const service: ChildServer = await startService(databaseUrl, { EXPORT_MAX_ROWS: '100000000' })
const runs: Run[] = []
const load = { start: os.loadavg(), end: [] as number[] }
try {
  const cases: Array<{ name: string, go: () => Promise<{ lines: number, bytes: number, firstByteMs: number, requests?: number }>, header: number }> = [
    { name: 'admin export csv', go: async () => await streamExport(`${service.url}/api/log/export?format=csv`, headersOf(admin)), header: 1 },
    { name: 'admin export ndjson', go: async () => await streamExport(`${service.url}/api/log/export?format=ndjson`, headersOf(admin)), header: 0 },
    ...(model === undefined
      ? []
      : [{ name: `admin export csv, model_name=${model.model_name} (${Number(model.n).toLocaleString('en-US')} rows)`, go: async () => await streamExport(`${service.url}/api/log/export?${new URLSearchParams({ model_name: model.model_name })}`, headersOf(admin)), header: 1 }]),
    ...(heavy === undefined
      ? []
      : [{ name: `self export csv (user ${heavy.id}, ${Number(heavy.n).toLocaleString('en-US')} rows)`, go: async () => await streamExport(`${service.url}/api/log/self/export`, headersOf(heavy)), header: 1 }]),
    { name: 'baseline: admin list, cursor, 100 a page', go: async () => await pageThrough(service.url, headersOf(admin), baselineRows), header: 0 }
  ]
  for (let i = 0; i < repeat; i++) {
    for (const c of cases) {
      const started = performance.now()
      const { result, rss, cpu } = await sampled(service.pid, c.go)
      const seconds = (performance.now() - started) / 1000
      const rows = result.lines - c.header
      const run: Run = {
        name: c.name,
        rows,
        bytes: result.bytes,
        seconds: Math.round(seconds * 1000) / 1000,
        rows_per_sec: Math.round(rows / seconds),
        first_byte_ms: Math.round(result.firstByteMs),
        rss_mb: rss,
        service_cpu_us_per_row: Math.round(cpu * 1000 / rows * 100) / 100,
        requests: result.requests ?? 1
      }
      runs.push(run)
      process.stdout.write(`${run.name}: ${run.rows.toLocaleString('en-US')} rows in ${run.seconds} s = ${run.rows_per_sec.toLocaleString('en-US')} rows/s; ` +
        `first byte ${run.first_byte_ms} ms; RSS ${rss.before} → peak ${rss.peak} → ${rss.after} MB; service CPU ${run.service_cpu_us_per_row} µs/row\n`)
    }
  }
} finally {
  load.end = os.loadavg()
  await service.stop()
}

const report = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', load_start: load.start, load_end: load.end },
  table_rows: tableRows,
  runs
}
const out = args.out ?? path.join(import.meta.dirname, 'out', `export-${report.date.replace(/[:.]/g, '-')}.json`)
mkdirSync(path.dirname(out), { recursive: true })
writeFileSync(out, JSON.stringify(report, null, 2) + '\n')
process.stdout.write(`load average ${load.start.map((l) => l.toFixed(1)).join(' ')} → ${load.end.map((l) => l.toFixed(1)).join(' ')}; report: ${out}\n`)
