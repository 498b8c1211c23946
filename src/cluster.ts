import cluster, { type Worker } from 'node:cluster'
import { pino, type Logger } from 'pino'

// WORKERS=N: the primary process forks N workers that each build the app and listen on the same
// HOST:PORT (node:cluster hands each connection to one of them). What must happen once (the
// embedded server, migrations, the root user) the primary has done before; what must happen once
// at run time needs no primary: purges, retention and the fold take PostgreSQL advisory locks,
// and with REDIS_URL the rate limits are counted in Redis.

/** What the primary logs: the JSON lines the workers write (Fastify's pino), from the primary, which has no app. */
export type PrimaryLog = Pick<Logger, 'info' | 'error'>

export function primaryLog (level: string): PrimaryLog {
  return pino({ level })
}

export interface ClusterOptions {
  workers: number
  /** the workers' environment: the primary's, with the DATABASE_URL it resolved */
  env: NodeJS.ProcessEnv
  log: PrimaryLog
  /** once every worker has exited: stops what the primary started (the embedded server) */
  stopped: () => Promise<void>
}

/** A worker closes with grace within 10 s (server.ts); past this the primary kills it. */
const WORKER_GRACE_MS = 15_000

/**
 * Forks the workers and keeps N of them running: one that dies after it was listening is logged
 * and replaced. One that dies before it listened (the port taken, a certificate unreadable) would
 * die again, so the whole service stops with exit code 1 instead of restarting it in a loop.
 * SIGTERM or SIGINT is passed on to every worker; once all have exited (each drains its requests),
 * `stopped` runs and the primary exits: 0 if every worker exited 0. A second signal kills the
 * workers at once.
 */
export function runCluster (opts: ClusterOptions): void {
  let stopping = false
  let failed = false
  const listening = new WeakSet<Worker>()

  const fork = () => {
    const worker = cluster.fork(opts.env)
    worker.once('listening', () => {
      listening.add(worker)
      opts.log.info({ worker: worker.process.pid }, 'worker listening')
    })
    worker.once('exit', (code, signal) => {
      if (stopping) return
      const fields = { worker: worker.process.pid, code, signal }
      if (listening.has(worker)) {
        opts.log.error(fields, 'worker died: starting another')
        fork()
      } else {
        opts.log.error(fields, 'worker died while starting: stopping the service')
        failed = true
        stop('SIGTERM')
      }
    })
  }

  const running = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead())

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C: no more waiting.
      for (const worker of running()) worker.process.kill('SIGKILL')
      return
    }
    stopping = true
    opts.log.info({ signal }, 'shutting down: stopping the workers')
    const workers = running()
    const exits = workers.map(async (worker) => await new Promise<boolean>((resolve) => {
      worker.once('exit', (code) => { resolve(code === 0) })
    }))
    // Sent even when a terminal already signalled the whole process group: a worker acts on its
    // first signal and ignores the rest.
    for (const worker of workers) worker.process.kill(signal)
    const overdue = setTimeout(() => {
      for (const worker of running()) {
        opts.log.error({ worker: worker.process.pid }, 'worker still running after the grace period: killed')
        worker.process.kill('SIGKILL')
      }
    }, WORKER_GRACE_MS)
    Promise.all(exits)
      .then(async (clean) => {
        clearTimeout(overdue)
        opts.log.info({}, 'workers stopped')
        await opts.stopped()
        process.exit(failed || clean.includes(false) ? 1 : 0)
      })
      .catch((err: unknown) => {
        opts.log.error({ reason: err instanceof Error ? err.message : String(err) }, 'shutdown failed')
        process.exit(1)
      })
  }

  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  for (let i = 0; i < opts.workers; i++) fork()
}
