import type pg from 'pg'

// --drop-indexes: the secondary indexes of logs are read from the catalog (so the migration stays
// their only definition), dropped for the load and built again afterwards, which is several times
// faster than maintaining them row by row. The primary key stays.

export interface IndexDefinition {
  name: string
  /** as a regclass prints it: quoted where needed, schema-qualified when not on the search_path */
  qualifiedName: string
  /** CREATE INDEX … as pg_get_indexdef prints it, schema-qualified */
  definition: string
}

export interface RebuildOptions {
  /** parallel connections; each builds one index at a time */
  jobs?: number
  maintenanceWorkMem?: string
  onBuilt?: (name: string, seconds: number) => void
}

/**
 * The catalog query for every index of `table` that no constraint owns (so not the primary key or
 * a unique constraint), oldest first, with $1 the table. Shared by the seed's --drop-indexes and the
 * conversion to partitions (queries/partitions.ts), which rebuild the same indexes.
 */
export const SECONDARY_INDEXES_SQL = `
    select c.relname as name, c.oid::regclass::text as "qualifiedName", pg_get_indexdef(c.oid) as definition
      from pg_index x
      join pg_class c on c.oid = x.indexrelid
     where x.indrelid = $1::regclass
       and not exists (select 1 from pg_constraint k where k.conindid = x.indexrelid)
     order by c.oid`

/** Every index of `table` that no constraint owns, as SECONDARY_INDEXES_SQL reads them. */
export async function captureIndexes (client: pg.ClientBase, table: string): Promise<IndexDefinition[]> {
  const { rows } = await client.query<IndexDefinition>(SECONDARY_INDEXES_SQL, [table])
  // A partitioned table's index prints as ON ONLY (the parent alone); built again, it must reach
  // every partition.
  return rows.map((r) => ({ ...r, definition: r.definition.replace(/ ON ONLY /, ' ON ') }))
}

export async function dropIndexes (client: pg.ClientBase, indexes: IndexDefinition[]): Promise<void> {
  for (const index of indexes) await client.query(`drop index ${index.qualifiedName}`)
}

// GIN builds are by far the slowest (the trigram index is over half of the total at 10M rows):
// start them first so the other connection works through the b-trees meanwhile.
function buildCost (definition: string): number {
  if (/ using gin /i.test(definition)) return 3
  if (/ using btree /i.test(definition) && /\b(content|other|username|token_name|model_name|request_id)\b/.test(definition)) return 2
  return 1
}

/**
 * Builds the indexes on `jobs` connections at once, slowest first. Each build runs in its own
 * transaction with maintenance_work_mem raised and no parallel workers: the connections already
 * keep the cores busy. Throws after all builds ran if any failed, naming the missing definitions.
 */
export async function rebuildIndexes (pool: pg.Pool, indexes: IndexDefinition[], opts: RebuildOptions = {}): Promise<void> {
  const queue = [...indexes].sort((a, b) => buildCost(b.definition) - buildCost(a.definition))
  const failed: Array<{ index: IndexDefinition, err: unknown }> = []

  async function worker (): Promise<void> {
    const client = await pool.connect()
    try {
      for (let index = queue.shift(); index !== undefined; index = queue.shift()) {
        const started = performance.now()
        try {
          await client.query('begin')
          await client.query('set local statement_timeout = 0')
          await client.query('set local max_parallel_maintenance_workers = 0')
          await client.query(`set local maintenance_work_mem = '${opts.maintenanceWorkMem ?? '1GB'}'`)
          await client.query(index.definition)
          await client.query('commit')
          opts.onBuilt?.(index.name, (performance.now() - started) / 1000)
        } catch (err) {
          await client.query('rollback').catch(() => {})
          failed.push({ index, err })
        }
      }
    } finally {
      client.release()
    }
  }

  const jobs = Math.max(1, Math.min(opts.jobs ?? 2, indexes.length))
  await Promise.all(Array.from({ length: jobs }, () => worker()))
  if (failed.length > 0) {
    const list = failed.map((f) => `${f.index.definition}; -- ${f.err instanceof Error ? f.err.message : String(f.err)}`).join('\n')
    throw new Error(`${failed.length} index(es) could not be rebuilt; create them by hand:\n${list}`)
  }
}
