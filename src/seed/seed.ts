import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { createDb } from '../db/pool.js'
import { ensurePartitions, readLayout } from '../queries/partitions.js'
import { ROLLUP_WRITE_LOCK_NAME, rollupUpsertsText } from '../queries/rollups/fold.js'
import { insertDimensions, loadDimensions, type Dimensions } from './dimensions.js'
import { captureIndexes, dropIndexes, rebuildIndexes, type IndexDefinition } from './indexes.js'
import { createLogChunks, LOG_COPY_COLUMNS, type LogRowOptions } from './log-rows.js'

// The data generator behind `npm run seed`: users, tokens and channels, then log rows streamed
// with COPY, optionally with the secondary indexes dropped and rebuilt around the load.

export interface SeedOptions {
  rows: number
  /** length of the window in days */
  days: number
  /** end of the window, unix seconds (exclusive); now when not given */
  end?: number
  users: number
  tokensPerUser: number
  models: number
  channels: number
  groups: number
  skew: number
  seed: number
  dropIndexes: boolean
  /** keep users, tokens, channels and logs; only add log rows */
  append: boolean
  /** connections building indexes at once */
  indexJobs: number
  maintenanceWorkMem: string
  /** bytes of COPY text per chunk */
  chunkBytes: number
}

export const SEED_DEFAULTS: Omit<SeedOptions, 'rows'> = {
  days: 30,
  users: 2000,
  tokensPerUser: 5,
  models: 20,
  channels: 30,
  groups: 5,
  skew: 2.5,
  seed: 42,
  dropIndexes: false,
  append: false,
  indexJobs: 2,
  maintenanceWorkMem: '1GB',
  chunkBytes: 1 << 20
}

export type SeedPhase = 'partitions' | 'dimensions' | 'drop-indexes' | 'copy' | 'rollups' | 'indexes' | 'analyze'

/** Where a caller (the CLI) hears about progress; every member optional, nothing printed by default. */
export interface SeedReporter {
  phase?: (phase: SeedPhase, detail: string) => void
  progress?: (rowsDone: number, rowsTotal: number) => void
  /** the definitions dropped for the load: until each is reported built, it is missing */
  indexesDropped?: (indexes: IndexDefinition[]) => void
  indexBuilt?: (name: string, seconds: number) => void
}

export interface SeedSummary {
  rows: number
  firstId: number
  lastId: number
  /** window [start, end), unix seconds */
  start: number
  end: number
  seconds: number
  /** generation + COPY + commit (not the TRUNCATE, users and tokens before it) */
  copySeconds: number
  rowsPerSecond: number
  /** undefined without dropIndexes */
  indexSeconds?: number
  indexesRebuilt: number
  analyzeSeconds: number
  tableBytes: number
  indexBytes: number
  totalBytes: number
}

const POSITIVE_INTEGERS = ['rows', 'days', 'users', 'tokensPerUser', 'models', 'channels', 'groups', 'indexJobs', 'chunkBytes'] as const

export function resolveSeedOptions (input: Partial<SeedOptions> & { rows: number }): SeedOptions {
  const opts: SeedOptions = { ...SEED_DEFAULTS, ...input }
  for (const key of POSITIVE_INTEGERS) {
    if (!Number.isSafeInteger(opts[key]) || opts[key] < 1) throw new RangeError(`${key} must be a positive integer, got ${opts[key]}`)
  }
  if (!Number.isSafeInteger(opts.seed)) throw new RangeError(`seed must be an integer, got ${opts.seed}`)
  if (!(opts.skew > 0 && Number.isFinite(opts.skew))) throw new RangeError(`skew must be a positive number, got ${opts.skew}`)
  if (opts.end !== undefined && !(Number.isSafeInteger(opts.end) && opts.end > opts.days * 86_400)) throw new RangeError(`end must be unix seconds, got ${opts.end}`)
  if (!/^[0-9]+ ?[kMG]?B$/.test(opts.maintenanceWorkMem)) throw new RangeError(`maintenanceWorkMem must look like 1GB, got ${opts.maintenanceWorkMem}`)
  return opts
}

/**
 * Fills the database. Without `append` the four tables are emptied (ids restart at 1) and users,
 * tokens and channels are made fresh; the load is one transaction, so a failed run leaves the
 * tables as they were (the index rebuild after it excepted: its error lists what is missing).
 * The pool needs `indexJobs` connections.
 */
export async function seedDatabase (pool: pg.Pool, input: Partial<SeedOptions> & { rows: number }, reporter: SeedReporter = {}): Promise<SeedSummary> {
  const opts = resolveSeedOptions(input)
  const end = opts.end ?? Math.floor(Date.now() / 1000)
  const start = end - opts.days * 86_400
  const started = performance.now()

  const partitioned = await partitionsFor(pool, start, end, reporter)
  // PostgreSQL has no COPY FREEZE into a partitioned table.
  const { firstId, dropped, copyStarted } = await loadRows(pool, opts, start, end, !opts.append && !partitioned, reporter)
  const copySeconds = (performance.now() - copyStarted) / 1000
  const indexSeconds = await rebuildDropped(pool, dropped, opts, reporter)
  const { analyzeSeconds, sizes } = await analyzeTables(pool, reporter)

  return {
    rows: opts.rows,
    firstId,
    lastId: firstId + opts.rows - 1,
    start,
    end,
    seconds: (performance.now() - started) / 1000,
    copySeconds,
    rowsPerSecond: opts.rows / copySeconds,
    indexSeconds,
    indexesRebuilt: dropped.length,
    analyzeSeconds,
    tableBytes: sizes.table,
    indexBytes: sizes.indexes,
    totalBytes: sizes.total
  }
}

interface LoadResult {
  firstId: number
  /** the indexes dropped for the load, still to be rebuilt */
  dropped: IndexDefinition[]
  /** performance.now() when the COPY began */
  copyStarted: number
}

/**
 * On the partitioned layout, the load's span gets its partitions first (not the default
 * partition). Returns whether logs is partitioned.
 */
async function partitionsFor (pool: pg.Pool, start: number, end: number, reporter: SeedReporter): Promise<boolean> {
  // Not destroyed: the pool is the caller's.
  const db = createDb(pool)
  const layout = await readLayout(db)
  if (!layout.partitioned || layout.grain === null) return layout.partitioned
  const created = await ensurePartitions(db, layout.grain, start, end)
  if (created.length > 0) reporter.phase?.('partitions', `${created.length} ${layout.grain} partitions`)
  return true
}

/** Dimensions, index drops, the COPY and the rollup sums: one transaction, so a failure leaves nothing behind. */
async function loadRows (pool: pg.Pool, opts: SeedOptions, start: number, end: number, freeze: boolean, reporter: SeedReporter): Promise<LoadResult> {
  const client = await pool.connect()
  try {
    await client.query('begin')
    await client.query('set local statement_timeout = 0')
    const { firstId, dims } = opts.append ? await appendTarget(client) : await freshDimensions(client, opts, reporter)
    const dropped = opts.dropIndexes ? await dropSecondaryIndexes(client, reporter) : []

    // The stat triggers would keep every copied row in a transition table until the COPY ends;
    // the rollups get the load's sums in one aggregate below instead (names from the
    // stat-rollup migration).
    await client.query('alter table logs disable trigger logs_stat_insert')
    reporter.phase?.('copy', `${opts.rows} rows`)
    const copyStarted = performance.now()
    // FREEZE after TRUNCATE in the same transaction: rows are written frozen and all-visible, so
    // the index builds, ANALYZE and the first queries do not rewrite every page to set hint bits.
    await copyLogs(client, dims, {
      rows: opts.rows, firstId, start, end, models: opts.models, skew: opts.skew, seed: opts.seed
    }, freeze, opts.chunkBytes, reporter)
    await client.query('select setval(pg_get_serial_sequence(\'logs\', \'id\'), $1)', [firstId + opts.rows - 1])
    reporter.phase?.('rollups', 'stat sums of the new rows')
    await writeRollupSums(client, firstId)
    await client.query('alter table logs enable trigger logs_stat_insert')
    await client.query('commit')
    return { firstId, dropped, copyStarted }
  } catch (err) {
    await client.query('rollback').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

async function appendTarget (client: pg.PoolClient): Promise<{ firstId: number, dims: Dimensions }> {
  // Writers wait for the load (readers do not), so the reserved id range stays ours.
  await client.query('lock table logs in exclusive mode')
  const firstId = await nextLogId(client)
  const dims = await loadDimensions(client)
  if (dims.users.length === 0) throw new Error('--append needs users, tokens and channels: seed once without --append first')
  return { firstId, dims }
}

async function freshDimensions (client: pg.PoolClient, opts: SeedOptions, reporter: SeedReporter): Promise<{ firstId: number, dims: Dimensions }> {
  reporter.phase?.('dimensions', `${opts.users} users, ${opts.users * opts.tokensPerUser} tokens, ${opts.channels} channels`)
  await client.query('truncate logs, tokens, users, channels restart identity')
  await insertDimensions(client, opts)
  return { firstId: 1, dims: await loadDimensions(client) }
}

async function dropSecondaryIndexes (client: pg.PoolClient, reporter: SeedReporter): Promise<IndexDefinition[]> {
  const dropped = await captureIndexes(client, 'logs')
  reporter.phase?.('drop-indexes', dropped.map((i) => i.name).join(', '))
  await dropIndexes(client, dropped)
  reporter.indexesDropped?.(dropped)
  return dropped
}

/**
 * The load's sums straight into the rollups, in the load's transaction (a failed seed leaves them
 * as they were), under the lock every rollup writer takes, should a service be folding meanwhile.
 */
async function writeRollupSums (client: pg.PoolClient, firstId: number): Promise<void> {
  await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [ROLLUP_WRITE_LOCK_NAME])
  await client.query(`
    with moved as materialized (
      select user_id, created_at / 60 as minute, type, count(*) as n, sum(quota) as quota,
        sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens
      from logs where id >= $1 group by 1, 2, 3
    ),
    ${rollupUpsertsText()}
    select 1`, [firstId])
}

/** Seconds the rebuild took; undefined when nothing was dropped. */
async function rebuildDropped (pool: pg.Pool, dropped: IndexDefinition[], opts: SeedOptions, reporter: SeedReporter): Promise<number | undefined> {
  if (dropped.length === 0) return undefined
  reporter.phase?.('indexes', `${dropped.length} indexes on ${Math.min(opts.indexJobs, dropped.length)} connections`)
  const started = performance.now()
  await rebuildIndexes(pool, dropped, { jobs: opts.indexJobs, maintenanceWorkMem: opts.maintenanceWorkMem, onBuilt: reporter.indexBuilt })
  return (performance.now() - started) / 1000
}

interface TableSizes { table: number, indexes: number, total: number }

async function analyzeTables (pool: pg.Pool, reporter: SeedReporter): Promise<{ analyzeSeconds: number, sizes: TableSizes }> {
  reporter.phase?.('analyze', 'logs, users, tokens, channels')
  const started = performance.now()
  const sizes = await withSession(pool, async (c) => {
    await c.query('analyze logs, users, tokens, channels')
    const { rows } = await c.query<TableSizes>(
      // Over the partitions too, on the partitioned layout (pg_partition_tree is empty for a plain table).
      `select sum(pg_table_size(relid))::float8 as table, sum(pg_indexes_size(relid))::float8 as indexes, sum(pg_total_relation_size(relid))::float8 as total
         from (select 'logs'::regclass as relid union select relid from pg_partition_tree('logs')) t`)
    return rows[0]!
  })
  return { analyzeSeconds: (performance.now() - started) / 1000, sizes }
}

/** The id after every existing row and every id the sequence handed out. Caller holds a lock that keeps writers out. */
async function nextLogId (client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ next: number }>(
    'select greatest((select coalesce(max(id), 0) from logs) + 1, nextval(pg_get_serial_sequence(\'logs\', \'id\')))::float8 as next')
  return rows[0]!.next
}

async function copyLogs (client: pg.PoolClient, dims: Dimensions, rowOpts: LogRowOptions, freeze: boolean, chunkBytes: number, reporter: SeedReporter): Promise<void> {
  const columns = LOG_COPY_COLUMNS.map((c) => client.escapeIdentifier(c)).join(', ')
  const copy = client.query(copyFrom(`copy logs (${columns}) from stdin with (format text${freeze ? ', freeze' : ''})`))
  const chunks = createLogChunks(dims, rowOpts, chunkBytes)
  function * produce () {
    for (let chunk = chunks.next(); chunk !== undefined; chunk = chunks.next()) {
      yield chunk
      reporter.progress?.(chunks.rowsDone(), rowOpts.rows)
    }
  }
  // pipeline: backpressure (a few chunks in flight, not the whole load in memory) and, on a COPY
  // error, the generator stops and the error surfaces here.
  await pipeline(Readable.from(produce(), { highWaterMark: 4 }), copy)
  if (copy.rowCount !== rowOpts.rows) throw new Error(`COPY wrote ${copy.rowCount} rows, expected ${rowOpts.rows}`)
}

async function withSession<T> (pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('set statement_timeout = 0')
    return await fn(client)
  } finally {
    await client.query('reset statement_timeout').catch(() => {})
    client.release()
  }
}
