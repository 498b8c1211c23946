import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ensureRootUser } from './bootstrap.js'
import { loadConfig, type Config } from './config.js'
import { migrateToLatest } from './db/migrate.js'
import { EmbeddedStartError } from './db/embedded.js'
import { resolveDatabase } from './db/resolve.js'
import { createDb, createPool } from './db/pool.js'

function readConfig (): Config {
  try {
    return loadConfig()
  } catch (err) {
    process.stderr.write(`invalid configuration: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  }
}

const config = readConfig()

const database = await resolveDatabase(config, { announce: (line) => process.stdout.write(`${line}\n`) }).catch((err: unknown) => {
  // A start-up problem the operator can fix: one sentence, no stack trace.
  if (!(err instanceof EmbeddedStartError)) throw err
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
})
const databaseUrl = database.url

// Migrations and the first-start root user run on their own short-lived connection, before the
// app's pool exists.
const setupDb = createDb(createPool({ connectionString: databaseUrl, max: 1, statementTimeoutMs: 0 }))
try {
  await migrateToLatest(setupDb)
  const root = await ensureRootUser(setupDb, config.ROOT_ACCESS_TOKEN)
  if (root.created) {
    const token = root.generatedToken ?? '$ROOT_ACCESS_TOKEN'
    // Printed once, on the console and not through the logger, so it never reaches log storage.
    process.stdout.write([
      '',
      `Created root user (id ${root.userId}). Call the API with:`,
      `  curl -H 'Authorization: Bearer ${token}' -H 'New-Api-User: ${root.userId}' http://${config.HOST}:${config.PORT}/api/log/`,
      'This token is shown only now.',
      ''
    ].join('\n') + '\n')
  }
} finally {
  await setupDb.destroy()
}

const app = await buildApp({ ...config, DATABASE_URL: databaseUrl })

closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
  await database.stop()
})

await app.listen({ host: config.HOST, port: config.PORT })
