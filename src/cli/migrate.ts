import { createDb, createPool } from '../db/pool.js'
import { migrateToLatest } from '../db/migrate.js'

// npm run migrate: applies pending migrations to DATABASE_URL.
const url = process.env.DATABASE_URL
if (url === undefined || url === '') {
  process.stderr.write('DATABASE_URL is required (npm start migrates the embedded database by itself)\n')
  process.exit(1)
}

const db = createDb(createPool({ connectionString: url, max: 1, statementTimeoutMs: 0 }))
try {
  const results = await migrateToLatest(db)
  for (const r of results) process.stdout.write(`${r.status === 'Success' ? 'applied' : r.status}: ${r.migrationName}\n`)
  if (results.length === 0) process.stdout.write('database is up to date\n')
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
} finally {
  await db.destroy()
}
