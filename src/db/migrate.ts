import { promises as fs } from 'node:fs'
import path from 'node:path'
import { FileMigrationProvider, Migrator, sql, type Kysely, type MigrationResult } from 'kysely'
import { convertToPartitions, type PartitionGrain } from '../queries/partitions.js'

// migrations/ sits at the top of the repository; resolved from this file, not the working directory.
export const migrationFolder = path.join(import.meta.dirname, '..', '..', 'migrations')

/** Applies every pending migration; throws with the failing one's name if any fails. */
export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: new FileMigrationProvider({ fs, path, migrationFolder }) })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return results
}

/**
 * Names of the migrations in migrations/, as Kysely's FileMigrationProvider names them (the file
 * name without its extension), read without importing them: loading every migration module on
 * each readiness probe took most of the probe's one-second budget on a busy machine.
 */
export async function migrationNames (): Promise<string[]> {
  const files = await fs.readdir(migrationFolder)
  return files
    .filter((f) => /\.(?:[cm]?js|[cm]?ts)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, f.lastIndexOf('.')))
    .sort()
}

/** Of `expected`, the names the database has not applied yet (all of them before the first migration). */
export async function pendingMigrations (db: Kysely<any>, expected: string[]): Promise<string[]> {
  const { rows } = await sql<{ applied: string[] | null }>`
    select case when to_regclass('kysely_migration') is null then null
      else (select coalesce(array_agg(name), '{}') from kysely_migration) end as applied`.execute(db)
  const applied = new Set(rows[0]?.applied ?? [])
  return expected.filter((name) => !applied.has(name))
}

/**
 * LOG_PARTITIONS, after the migrations: the plain logs table becomes the partitioned layout, once
 * (at 10M rows this takes minutes, writers waiting; bench/RESULTS.md). Returns whether it converted.
 * Nothing turns a partitioned table back: `off` leaves either layout as it is.
 */
export async function applyPartitioning (db: Kysely<any>, setting: PartitionGrain | 'off', onStep?: (step: string) => void): Promise<boolean> {
  if (setting === 'off') return false
  const started = Date.now()
  // Each step with the time since the start: at 10M rows the operator watches minutes go by.
  const step = (line: string) => onStep?.(`partitioning logs by ${setting}: ${line} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  const converted = await convertToPartitions(db, setting, { now: Math.floor(started / 1000), onStep: step })
  if (converted) step('done')
  return converted
}
