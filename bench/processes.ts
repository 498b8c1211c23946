// The service and the baselines each run as a child process of their own, so the service gets one
// process to itself (as in production) and the load generator's CPU is not counted against it.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

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

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

const OUTPUT_LIMIT = 256 * 1024

async function exited (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true
  const done = new Promise<true>((resolve) => child.once('exit', () => resolve(true)))
  // Unref'd: a pending timeout must not keep the harness alive once the child is gone.
  return await Promise.race([done, sleep(ms, false, { ref: false })])
}

/** Spawns `node --import tsx <script>` and waits until GET readyPath answers 200. */
async function startChild (name: string, script: string, env: NodeJS.ProcessEnv, readyPath: string, timeoutMs: number): Promise<ChildServer> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: REPO_ROOT,
    // No coverage of these children when tap runs the bench's tests: tsx builds src differently
    // from tap's loader (ts-node), and two builds of one file in the coverage data make its
    // report collapse, depending on which one is merged first.
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const collect = (chunk: Buffer) => {
    output += chunk.toString()
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)

  const url = `http://127.0.0.1:${port}`
  const server: ChildServer = {
    name,
    pid: child.pid ?? 0,
    url,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      // The service closes with grace (up to 10 s) on SIGTERM.
      if (!(await exited(child, 15_000))) {
        child.kill('SIGKILL')
        await exited(child, 5_000)
      }
    }
  }

  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited during start-up (code ${child.exitCode ?? child.signalCode}):\n${output.slice(-4000)}`)
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
      throw new Error(`${name} did not answer ${readyPath} within ${timeoutMs / 1000} s:\n${output.slice(-4000)}`)
    }
    await sleep(100)
  }
}

/** The service as production starts it (src/server.ts: migrate, then listen), quiet but for warnings. */
export async function startService (databaseUrl: string, env: NodeJS.ProcessEnv = {}): Promise<ChildServer> {
  return await startChild('service', 'src/server.ts', { ...SERVICE_ENV, ...env, DATABASE_URL: databaseUrl }, '/healthz', 120_000)
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

/** pino lines at warn (40) or above from the service's output. */
export function serviceWarnings (output: string): Array<{ level: number, msg: string, err?: string }> {
  const lines: Array<{ level: number, msg: string, err?: string }> = []
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const entry = JSON.parse(line) as { level?: number, msg?: string, err?: { message?: string } }
      if ((entry.level ?? 0) >= 40) lines.push({ level: entry.level ?? 0, msg: entry.msg ?? '', err: entry.err?.message })
    } catch {
      // not a log line
    }
  }
  return lines
}
