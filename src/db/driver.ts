import { createHash } from 'node:crypto'
import type pg from 'pg'
import { CompiledQuery, PostgresDialect, type DatabaseConnection, type Driver, type QueryResult, type TransactionSettings } from 'kysely'
import { planPolicyOf } from './plan.js'

// Kysely's PostgreSQL dialect with a driver of our own: the stock one sends every statement as
// text and values only, so a statement's plan policy (db/plan.ts) could not reach pg's `name`.

/** Named statements per pool at most: every text a prepared statement may take is fixed by the code, this is a guard. */
const MAX_NAMED = 5000

export class PlannedPostgresDialect extends PostgresDialect {
  readonly #pool: pg.Pool
  readonly #prepare: boolean

  constructor (pool: pg.Pool, opts: { prepare: boolean }) {
    super({ pool })
    this.#pool = pool
    this.#prepare = opts.prepare
  }

  override createDriver (): Driver {
    return new PlannedPostgresDriver(this.#pool, this.#prepare)
  }
}

class PlannedPostgresDriver implements Driver {
  readonly #names = new Map<string, string>()
  readonly #name = (query: CompiledQuery) => this.#nameOf(query)

  constructor (private readonly pool: pg.Pool, private readonly prepare: boolean) {}

  async init (): Promise<void> {}

  async acquireConnection (): Promise<DatabaseConnection> {
    return new PlannedConnection(await this.pool.connect(), this.#name)
  }

  async beginTransaction (conn: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const isolation = settings.isolationLevel === undefined ? '' : ` isolation level ${settings.isolationLevel}`
    const access = settings.accessMode === undefined ? '' : ` ${settings.accessMode}`
    await conn.executeQuery(CompiledQuery.raw(`start transaction${isolation}${access}`))
  }

  async commitTransaction (conn: DatabaseConnection): Promise<void> {
    // COMMIT of a transaction an earlier error aborted completes as ROLLBACK: that is a failure.
    const { rows } = await conn.executeQuery<{ command: string }>(CompiledQuery.raw('commit'))
    if (rows[0]?.command === 'ROLLBACK') throw new Error('the transaction was aborted and rolled back')
  }

  async rollbackTransaction (conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('rollback'))
  }

  async releaseConnection (conn: DatabaseConnection): Promise<void> {
    (conn as PlannedConnection).release()
  }

  async destroy (): Promise<void> {
    await this.pool.end()
  }

  /**
   * The statement name for a prepared statement's text, one name per text for the pool's life.
   * Named after the text's digest, not a counter: the reads' Kysely (db/replicas.ts) checks out
   * primary connections too, and its driver's names must not mean another text there.
   */
  #nameOf (query: CompiledQuery): string | undefined {
    if (!this.prepare) return undefined
    const policy = planPolicyOf(query.queryId)
    if (policy?.kind !== 'prepared') return undefined
    let name = this.#names.get(query.sql)
    if (name === undefined && this.#names.size < MAX_NAMED) {
      name = `${policy.label}:${createHash('sha256').update(query.sql).digest('base64url').slice(0, 16)}`
      this.#names.set(query.sql, name)
    }
    return name
  }
}

class PlannedConnection implements DatabaseConnection {
  #broken = false

  constructor (private readonly client: pg.PoolClient, private readonly nameOf: (query: CompiledQuery) => string | undefined) {}

  async executeQuery<R> (query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      const result = await this.client.query<R & pg.QueryResultRow>({ name: this.nameOf(query), text: query.sql, values: [...query.parameters] })
      if (result.command === 'ROLLBACK' || result.command === 'COMMIT') return { rows: [{ command: result.command } as R] }
      const writes = result.command === 'INSERT' || result.command === 'UPDATE' || result.command === 'DELETE' || result.command === 'MERGE'
      return { rows: result.rows ?? [], numAffectedRows: writes ? BigInt(result.rowCount ?? 0) : undefined }
    } catch (err) {
      // A connection whose ROLLBACK (or anything) failed at the protocol level is not reused.
      if ((err as { code?: unknown }).code === undefined) this.#broken = true
      throw err
    }
  }

  async * streamQuery<R> (): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported by this driver')
  }

  release (): void {
    this.client.release(this.#broken)
  }
}
