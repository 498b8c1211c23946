import type pg from 'pg'
import { createPool } from './pool.js'
import { isConflict, isDatabaseUnavailable } from './errors.js'

// Reads from streaming replicas (DATABASE_READ_URL). The router stands where a pg.Pool is expected
// (the reads' Kysely, the export's COPY) and picks, at each checkout, a replica whose replay lag is
// within READ_MAX_LAG_MS, round robin, or else the primary's request pool. A probe per replica
// measures the lag on a connection of its own, so a busy request pool never delays it.

export interface ReplicaRouterOptions {
  /** one URL per replica; they may hold passwords, so only their index is ever shown */
  connectionStrings: string[]
  /** the primary's request pool: where reads go when no replica qualifies */
  primary: pg.Pool
  /** the primary's URL, for the probe that samples its write position */
  primaryConnectionString: string
  poolMax: number
  statementTimeoutMs: number
  connectTimeoutMs: number
  maxLagMs: number
  checkIntervalMs: number
  log: { warn: (obj: object, msg: string) => void, info: (obj: object, msg: string) => void }
}

export interface ReplicaStatus {
  index: number
  /** the last probe answered, from a server in recovery, and no query has lost its connection since */
  up: boolean
  /** replay lag at the last probe; 0 when it had replayed all the primary had written; null when unknown */
  lagMs: number | null
  /** connection checkouts it served */
  reads: number
  /** statements it cancelled for a conflict with replay, run again on the primary */
  conflicts: number
}

interface Replica extends ReplicaStatus {
  pool: pg.Pool
  probe: pg.Pool
  /** a probe has answered or failed once: a replica down from the start is told of once too */
  probed: boolean
}

/** What a replica's probe reads. */
export interface ProbeRow {
  /** pg_is_in_recovery(): false once promoted (or never a replica), its data maybe parted from the primary's */
  recovery: boolean
  /** it had replayed the primary's write position sampled just before; null when that was not read */
  caught_up: boolean | null
  /** age of the last commit it replayed; null before it has replayed one */
  lag_ms: number | null
}

/**
 * The lag a probe's answer means; null (not a replica, or lag unknown) keeps the replica from
 * reads. An idle primary commits nothing, so the last replayed commit grows old without any lag:
 * a replica that had replayed what the primary had written is caught up.
 */
export function lagOf (row: ProbeRow | undefined): number | null {
  if (row?.recovery !== true) return null
  if (row.caught_up === true) return 0
  return row.lag_ms === null ? null : Math.max(0, row.lag_ms)
}

/** A query cancelled by statement_timeout would cost the primary as much again: only lost connections are retried there. */
function connectionLost (err: unknown): boolean {
  return isDatabaseUnavailable(err) && (err as { code?: unknown }).code !== '57014'
}

// How a statement of the driver opens or ends a transaction (db/driver.ts); inside one, a lost
// connection fails the statement: its earlier statements' snapshot is gone with it.
const TRANSACTION_START = /^\s*(start transaction|begin)\b/i
const TRANSACTION_END = /^\s*(commit|rollback)\b/i

export class ReplicaRouter {
  readonly #opts: ReplicaRouterOptions
  readonly #replicas: Replica[]
  /** the primary's write position, sampled before each round of replica probes */
  readonly #primaryProbe: pg.Pool
  #next = 0
  #fallbacks = 0
  #timer: NodeJS.Timeout | undefined
  #round: Promise<void> | undefined
  #closed = false

  constructor (opts: ReplicaRouterOptions) {
    this.#opts = opts
    const poolOf = (connectionString: string, max: number, applicationName: string, statementTimeoutMs: number) => {
      const pool = createPool({ connectionString, max, applicationName, statementTimeoutMs, connectTimeoutMs: opts.connectTimeoutMs })
      // An idle client whose server went away emits 'error' on its pool; unhandled, that would crash the process.
      pool.on('error', (err: Error & { code?: string }) => {
        opts.log.warn({ code: err.code, reason: err.message, pool: applicationName }, 'idle database connection lost')
      })
      return pool
    }
    // A probe is given the interval to answer, so that rounds do not pile up.
    const probeTimeoutMs = Math.max(100, opts.checkIntervalMs)
    this.#primaryProbe = poolOf(opts.primaryConnectionString, 1, 'log-service-lag-probe', probeTimeoutMs)
    this.#replicas = opts.connectionStrings.map((url, index) => ({
      index,
      up: false,
      lagMs: null,
      reads: 0,
      conflicts: 0,
      probed: false,
      pool: poolOf(url, opts.poolMax, `log-service-replica-${index}`, opts.statementTimeoutMs),
      probe: poolOf(url, 1, `log-service-replica-probe-${index}`, probeTimeoutMs)
    }))
  }

  /** Starts the periodic probes, the first one now; until it answers, reads go to the primary. */
  start (): void {
    const tick = () => {
      this.#timer = undefined
      this.probe().finally(() => {
        if (this.#closed) return
        this.#timer = setTimeout(tick, this.#opts.checkIntervalMs)
        this.#timer.unref()
      }).catch(() => {})
    }
    tick()
  }

  /** One round of probes, after the one under way if any (tests call it to make the state current). */
  async probe (): Promise<void> {
    while (this.#round !== undefined) await this.#round
    this.#round = this.#probeAll().finally(() => { this.#round = undefined })
    await this.#round
  }

  async #probeAll (): Promise<void> {
    // Before the replicas: a replica that has replayed this position has nothing to catch up on.
    let primaryLsn: string | null = null
    try {
      const { rows } = await this.#primaryProbe.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
      primaryLsn = rows[0]?.lsn ?? null
    } catch {
      // Without it a replica's lag is its last replayed commit's age alone.
    }
    await Promise.all(this.#replicas.map(async (replica) => { await this.#probeOne(replica, primaryLsn) }))
  }

  async #probeOne (replica: Replica, primaryLsn: string | null): Promise<void> {
    let row: ProbeRow | undefined
    let failure: unknown
    try {
      ({ rows: [row] } = await replica.probe.query<ProbeRow>(`
        select pg_is_in_recovery() as recovery,
          pg_last_wal_replay_lsn() >= $1::pg_lsn as caught_up,
          (extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 as lag_ms`, [primaryLsn]))
    } catch (err) {
      failure = err
    }
    const wasUp = replica.up
    const first = !replica.probed
    replica.probed = true
    replica.up = row?.recovery === true
    replica.lagMs = lagOf(row)
    if ((wasUp || first) && !replica.up) {
      const reason = failure === undefined ? 'not in recovery' : (failure as Error).message
      this.#opts.log.warn({ replica: replica.index, reason, code: (failure as { code?: unknown } | undefined)?.code }, 'read replica down: reads go elsewhere')
    } else if (!wasUp && replica.up) {
      this.#opts.log.info({ replica: replica.index, lagMs: replica.lagMs }, 'read replica up')
    }
  }

  /** A replica that qualifies now, round robin; undefined sends the read to the primary. */
  #pick (): Replica | undefined {
    const fit = this.#replicas.filter((r) => r.up && r.lagMs !== null && r.lagMs <= this.#opts.maxLagMs)
    if (fit.length === 0) return undefined
    this.#next = (this.#next + 1) % fit.length
    return fit[this.#next]
  }

  #markDown (replica: Replica, err: unknown): void {
    if (!replica.up) return
    replica.up = false
    replica.lagMs = null
    this.#opts.log.warn({ replica: replica.index, reason: (err as Error).message, code: (err as { code?: unknown }).code }, 'read replica lost: reads go elsewhere until it answers a probe')
  }

  async #fromPrimary (): Promise<pg.PoolClient> {
    this.#fallbacks++
    return await this.#opts.primary.connect()
  }

  /** pg.Pool's connect(): a client of the chosen server. A replica that cannot be reached hands the read to the primary. */
  async connect (): Promise<pg.PoolClient> {
    const replica = this.#pick()
    if (replica === undefined) return await this.#fromPrimary()
    let client: pg.PoolClient
    try {
      client = await replica.pool.connect()
    } catch (err) {
      this.#markDown(replica, err)
      return await this.#fromPrimary()
    }
    replica.reads++
    return this.#retryingOnPrimary(client, replica)
  }

  /**
   * The replica's client, but a statement outside a transaction whose connection is lost, or that
   * the replica cancelled for a conflict with replay (a lock or row versions replay needed, held
   * past max_standby_streaming_delay, or a deadlock with replay), is run again on the primary: a
   * replica dying or replaying under a request costs that request nothing. Only a lost connection
   * takes the replica out. COPY streams (the export's) are not run again: their rows may be half sent.
   */
  #retryingOnPrimary (client: pg.PoolClient, replica: Replica): pg.PoolClient {
    let inTransaction = false
    let lost: Error | undefined
    const query = async (config: pg.QueryConfig) => {
      if (TRANSACTION_START.test(config.text)) inTransaction = true
      else if (TRANSACTION_END.test(config.text)) inTransaction = false
      try {
        return await client.query(config)
      } catch (err) {
        if (inTransaction) throw err
        if (connectionLost(err)) {
          lost = err as Error
          this.#markDown(replica, err)
        } else if (isConflict(err)) {
          replica.conflicts++
          this.#opts.log.info({ replica: replica.index, code: (err as { code?: unknown }).code, reason: (err as Error).message }, 'read replica cancelled a statement for a conflict with replay: it runs again on the primary')
        } else {
          throw err
        }
        const primary = await this.#fromPrimary()
        try {
          return await primary.query(config)
        } finally {
          primary.release()
        }
      }
    }
    return new Proxy(client, {
      get (target, property, receiver) {
        if (property === 'query') {
          return (...args: unknown[]) => {
            const [config] = args
            const plain = args.length === 1 && typeof config === 'object' && config !== null &&
              typeof (config as { text?: unknown }).text === 'string' && typeof (config as { submit?: unknown }).submit !== 'function'
            return plain ? query(config as pg.QueryConfig) : (target.query as (...a: unknown[]) => unknown)(...args)
          }
        }
        // The connection that was lost goes, whatever its user says.
        if (property === 'release') return (err?: Error | boolean) => { target.release(lost ?? err) }
        const value: unknown = Reflect.get(target, property, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }

  status (): ReplicaStatus[] {
    return this.#replicas.map(({ index, up, lagMs, reads, conflicts }) => ({ index, up, lagMs, reads, conflicts }))
  }

  /** reads sent to the primary because no replica qualified, or the one chosen was lost or cancelled the statement */
  get fallbacks (): number {
    return this.#fallbacks
  }

  /** the replicas' request pools, for their gauges */
  get pools (): pg.Pool[] {
    return this.#replicas.map((r) => r.pool)
  }

  /** Where a pg.Pool is expected: the reads' driver and the export only check clients out (connect), and end it. */
  asPool (): pg.Pool {
    return this as unknown as pg.Pool
  }

  /** pg.Pool's end(): stops the probes and closes the replicas' pools; the primary's is its owner's to close. */
  async end (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    await this.#round?.catch(() => {})
    await Promise.all([this.#primaryProbe, ...this.#replicas.flatMap((r) => [r.pool, r.probe])].map(async (p) => { await p.end() }))
  }
}

/** DATABASE_READ_URL's URLs: comma-separated, blanks ignored. */
export function parseReadUrls (value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')
}
