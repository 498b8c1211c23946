// The service and the baselines each run as a child process of their own, so the service gets one
// process to itself (as in production) and the load generator's CPU is not counted against it.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, startNodeChild } from '../src/lib/child-process.js'

export const REPO_ROOT = path.resolve(import.meta.dirname, '..')

export interface ChildServer {
  name: string
  pid: number
  /** origin, e.g. http://127.0.0.1:41234 */
  url: string
  /** the tail of its stdout and stderr */
  output: () => string
  stop: () => Promise<void>
}

/** Spawns `node --import tsx <script>` and waits until GET readyPath answers 200. */
async function startChild (name: string, script: string, env: NodeJS.ProcessEnv, readyPath: string, timeoutMs: number): Promise<ChildServer> {
  const port = await freePort()
  const child = startNodeChild(script, { cwd: REPO_ROOT, env: { ...process.env, ...env, PORT: String(port) } })
  const url = `http://127.0.0.1:${port}`
  const server: ChildServer = {
    name,
    pid: child.pid,
    url,
    output: child.output,
    stop: async () => { await child.stop() }
  }

  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.status() !== null) {
      throw new Error(`${name} exited during start-up (code ${child.status()}):\n${child.output().slice(-4000)}`)
    }
    try {
      const res = await fetch(url + readyPath)
      await res.arrayBuffer()
      if (res.status === 200) return server
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop()
      throw new Error(`${name} did not answer ${readyPath} within ${timeoutMs / 1000} s:\n${child.output().slice(-4000)}`)
    }
    await sleep(100)
  }
}

/** The service as production starts it (src/server.ts: migrate, then listen), quiet but for warnings. */
export async function startService (databaseUrl: string, env: NodeJS.ProcessEnv = {}): Promise<ChildServer> {
  return await startChild('service', 'src/server.ts', { ...SERVICE_ENV, ...env, DATABASE_URL: databaseUrl }, '/readyz', 120_000)
}

/** What the harness sets for the service; everything else comes from the environment or the defaults. */
export const SERVICE_ENV = {
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  // The token route is rate limited per client IP; all the load comes from one.
  TOKEN_RATE_LIMIT_MAX: '1000000000'
}

export async function startBaselines (databaseUrl: string): Promise<ChildServer> {
  return await startChild('baselines', 'bench/baselines.ts', { DATABASE_URL: databaseUrl }, '/static', 60_000)
}

/** Resident and peak resident memory of a process, MB (Linux only; null elsewhere). */
export function readRss (pid: number): { rssMb: number, peakMb: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+([0-9]+) kB`, 'm').exec(status)?.[1] ?? NaN)
    const rss = kb('VmRSS')
    const peak = kb('VmHWM')
    if (Number.isNaN(rss)) return null
    return { rssMb: Math.round(rss / 1024 * 10) / 10, peakMb: Math.round(peak / 1024 * 10) / 10 }
  } catch {
    return null
  }
}

/** pino lines at warn (40) or above from the service's output, with the request's URL when logged. */
export function serviceWarnings (output: string): Array<{ level: number, msg: string, err?: string, url?: string }> {
  const lines: Array<{ level: number, msg: string, err?: string, url?: string }> = []
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const entry = JSON.parse(line) as { level?: number, msg?: string, err?: { message?: string }, req?: { url?: string } }
      if ((entry.level ?? 0) >= 40) lines.push({ level: entry.level ?? 0, msg: entry.msg ?? '', err: entry.err?.message, url: entry.req?.url })
    } catch {
      // not a log line
    }
  }
  return lines
}
