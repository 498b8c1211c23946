// Node child processes running TypeScript through tsx, as the tests and the benchmark start the
// service, its baselines and the tests' PostgreSQL owner.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** A port that was free a moment ago on 127.0.0.1 (another process may take it before it is used). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      // A TCP listener's address is always an AddressInfo (a string only for a pipe or a socket file).
      const { port } = srv.address() as AddressInfo
      srv.close(() => { resolve(port) })
    })
  })
}

/**
 * An environment that keeps a child process out of tap's coverage: the child builds src with tsx,
 * the test processes with tap's ts-node, and two builds of one file in the coverage data make that
 * file's report collapse, depending on which one is merged first.
 */
export function withoutChildCoverage (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
}

/** `node --import tsx <script> ...args`, with `options.env` (default: this process's environment), out of coverage. */
export function spawnTsx (script: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    ...options,
    env: withoutChildCoverage(options.env ?? process.env)
  })
}

export interface NodeChild {
  pid: number
  /** the tail of its stdout and stderr, interleaved */
  output: () => string
  /** resolves once `pattern` matches the output, or when the child exits without that */
  waitForOutput: (pattern: RegExp) => Promise<void>
  /** its exit code, or the signal that ended it; null while it runs */
  status: () => number | NodeJS.Signals | null
  /** the exit code once it has exited (null when a signal ended it) */
  exited: Promise<number | null>
  /** SIGTERM, then SIGKILL if it is still running 15 s later; the exit code */
  stop: () => Promise<number | null>
}

export interface NodeChildOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
}

const OUTPUT_LIMIT = 256 * 1024

/** Starts `node --import tsx <script>` with its output piped and kept (the last 256 KiB). */
export function startNodeChild (script: string, opts: NodeChildOptions = {}): NodeChild {
  const child = spawnTsx(script, [], { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  let output = ''
  const watchers = new Set<() => void>()
  const collect = (chunk: Buffer) => {
    output += chunk.toString()
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT)
    for (const watch of watchers) watch()
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)

  const status = () => child.exitCode ?? child.signalCode
  // Unref'd: a pending timeout must not keep the process alive once the child is gone.
  const exitsWithin = async (ms: number) => await Promise.race([exited.then(() => true), sleep(ms, false, { ref: false })])

  return {
    pid: child.pid ?? 0,
    output: () => output,
    waitForOutput: async (pattern) => await new Promise<void>((resolve) => {
      const watch = () => {
        if (!pattern.test(output)) return
        watchers.delete(watch)
        resolve()
      }
      watchers.add(watch)
      watch()
      exited.then(() => { watchers.delete(watch); resolve() }, () => {})
    }),
    status,
    exited,
    stop: async () => {
      if (status() === null) {
        child.kill('SIGTERM')
        // The service closes with grace (up to 10 s) on SIGTERM.
        if (!(await exitsWithin(15_000))) {
          child.kill('SIGKILL')
          await exitsWithin(5_000)
        }
      }
      return child.exitCode
    }
  }
}
