import { promises as fs } from 'node:fs'
import path from 'node:path'
import { FileMigrationProvider, Migrator, type Kysely, type MigrationResult } from 'kysely'

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
