import cluster from 'node:cluster'
import closeWithGrace from 'close-with-grace'
import { buildApp, type App } from './app.js'
import { primaryLog, runCluster } from './cluster.js'
import { ensureRootUser } from './bootstrap.js'
import { loadConfig, type Config } from './config.js'
import { applyPartitioning, migrateToLatest } from './db/migrate.js'
import { EmbeddedStartError } from './db/embedded.js'
import { resolveDatabase, type ResolvedDatabase } from './db/resolve.js'
import { createDb, createPool } from './db/pool.js'
import { clearTextWarning, httpsOptions, TlsFileError } from './tls.js'

function readConfig (): Config {
  try {
    return loadConfig()
  } catch (err) {
    process.stderr.write(`invalid configuration: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  }
}

const config = readConfig()

// Read before anything starts, so that an unreadable certificate stops the service at once.
const https = (() => {
  try {
    return httpsOptions(config)
  } catch (err) {
    if (!(err instanceof TlsFileError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  }
})()
const scheme = https === undefined ? 'http' : 'https'

if (cluster.isWorker) {
  // The primary resolved the database (DATABASE_URL is the one it passed), migrated it and made
  // the root user.
  await serveWorker(config.DATABASE_URL ?? '')
} else {
  const database = await resolveDatabase(config, { announce: (line) => process.stdout.write(`${line}\n`) }).catch((err: unknown) => {
    // A start-up problem the operator can fix: one sentence, no stack trace.
    if (!(err instanceof EmbeddedStartError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  })
  await prepareDatabase(database.url)
  if (config.WORKERS === 1) {
    await serve(database)
  } else {
    const log = primaryLog(config.LOG_LEVEL)
    runCluster({
      workers: config.WORKERS,
      env: { ...process.env, DATABASE_URL: database.url },
      log,
      stopped: async () => {
        if (!database.embedded) return
        await database.stop()
        log.info({}, 'embedded PostgreSQL stopped')
      }
    })
  }
}

/**
 * Migrations, LOG_PARTITIONS's conversion and the first-start root user, once (in the primary when WORKERS > 1), on their own
 * short-lived connection, before any app's pool exists.
 */
async function prepareDatabase (databaseUrl: string): Promise<void> {
  const setupDb = createDb(createPool({ connectionString: databaseUrl, max: 1, statementTimeoutMs: 0 }))
  try {
    await migrateToLatest(setupDb)
    await applyPartitioning(setupDb, config.LOG_PARTITIONS, (line) => process.stdout.write(`${line}\n`))
    const root = await ensureRootUser(setupDb, config.ROOT_ACCESS_TOKEN)
    if (root.created) {
      const token = root.generatedToken ?? '$ROOT_ACCESS_TOKEN'
      // Printed once, on the console and not through the logger, so it never reaches log storage.
      process.stdout.write([
        '',
        `Created root user (id ${root.userId}). Call the API with:`,
        `  curl -H 'Authorization: Bearer ${token}' -H 'New-Api-User: ${root.userId}' ${scheme}://${config.HOST}:${config.PORT}/api/log/`,
        'This token is shown only now.',
        ''
      ].join('\n') + '\n')
    }
  } finally {
    await setupDb.destroy()
  }
}

async function startApp (databaseUrl: string) {
  const app = await buildApp({ ...config, DATABASE_URL: databaseUrl }, https === undefined ? {} : { https })
  const clearText = clearTextWarning(config)
  if (clearText !== undefined) app.log.warn(clearText)
  return app
}

/** Requests in flight finish; a purge stops at its next batch boundary; then the pools close. */
async function drain (app: App, err: Error | undefined, signal: string | undefined): Promise<void> {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
  app.log.info('requests drained, database connections closed')
}

/** The single process (WORKERS=1): the app, and the embedded server it may have started. */
async function serve (database: ResolvedDatabase): Promise<void> {
  const app = await startApp(database.url)
  closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
    await drain(app, err, signal)
    if (database.embedded) {
      await database.stop()
      app.log.info('embedded PostgreSQL stopped')
    }
  })
  await app.listen({ host: config.HOST, port: config.PORT })
}

/**
 * A cluster worker. Ctrl-C on a terminal signals the whole process group and the primary passes
 * the signal on as well: the first one starts the close, later ones are ignored (the primary kills
 * a worker that outlives its grace period). Set up while the app is built, so that a signal
 * during start-up ends the worker cleanly too.
 */
async function serveWorker (databaseUrl: string): Promise<void> {
  const starting = startApp(databaseUrl)
  let received: string | undefined
  const grace = closeWithGrace({ delay: 10_000, skip: ['SIGINT', 'SIGTERM'] }, async ({ err, signal }) => {
    await drain(await starting, err, signal ?? received)
  })
  const onSignal = (signal: string) => {
    if (received !== undefined) return
    received = signal
    grace.close()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const app = await starting
  if (received === undefined) await app.listen({ host: config.HOST, port: config.PORT })
}
