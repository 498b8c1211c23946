import { loadConfig } from '../config.js'
import { createDb, createPool } from '../db/pool.js'
import { migrateToLatest } from '../db/migrate.js'
import { resolveDatabase } from '../db/resolve.js'

// npm run migrate: applies pending migrations to DATABASE_URL, or to the embedded database npm
// start uses.
const database = await resolveDatabase(loadConfig(), { announce: (line) => process.stdout.write(`${line}\n`) })
const db = createDb(createPool({ connectionString: database.url, max: 1, statementTimeoutMs: 0 }))
try {
  const results = await migrateToLatest(db)
  for (const r of results) process.stdout.write(`${r.status === 'Success' ? 'applied' : r.status}: ${r.migrationName}\n`)
  if (results.length === 0) process.stdout.write('database is up to date\n')
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
} finally {
  await db.destroy()
  await database.stop()
}
