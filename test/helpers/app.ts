import { randomBytes, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { Insertable, Kysely } from 'kysely'
import { buildApp, loggerOptions, type App } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Database, LogsTable } from '../../src/db/types.js'
import { captureLogs, registerSecret } from './secrets.js'
import { databaseUrl, readState, TEMPLATE_DB } from './state.js'

type Tap = { teardown: (fn: () => unknown) => void }

/** A fresh database cloned from the migrated template, dropped when the test ends. */
export async function createTestDatabase (t: Tap, opts: { empty?: boolean } = {}): Promise<string> {
  const { adminUrl } = readState()
  const name = `log_test_${randomUUID().replace(/-/g, '')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    // Empty: no schema at all, for what migrates it itself.
    await admin.query(`create database ${name}${opts.empty === true ? '' : ` template ${TEMPLATE_DB}`}`)
  } finally {
    await admin.end()
  }
  t.teardown(async () => { await dropTestDatabase(adminUrl, name) })
  return databaseUrl(adminUrl, name)
}

/**
 * Drops a test database once its connections have gone, terminating those still there after 5 s.
 * A pool's end() resolves once it has asked its clients to close, not once they have: a DROP … WITH
 * (FORCE) at once terminated backends still reading their clients' goodbye, and each such client
 * failed its test with 57P01 (seen in test/db/partitions.test.ts on PostgreSQL 15).
 */
async function dropTestDatabase (adminUrl: string, name: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl })
  await c.connect()
  try {
    for (let waited = 0; waited < 5000; waited += 50) {
      const { rows: [open] } = await c.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where datname = $1', [name])
      if (open?.n === 0) break
      await sleep(50)
    }
    await c.query(`drop database if exists ${name} with (force)`)
  } finally {
    await c.end()
  }
}

/** The configuration a test app runs with: the schema's defaults, quiet, no auth cache. */
export function testConfig (overrides: Partial<Config> = {}): Config {
  // Load shedding off: a test process is busy by design (tap, TypeScript, other files on the same
  // cores), and a stray 503 would fail an unrelated test. test/plugins/pressure.test.ts turns it on.
  // The failed-authentication limit likewise (test/routes/auth-failures.test.ts): every test
  // request comes from 127.0.0.1, and auth tests fail on purpose by the dozen.
  // Statements may run a minute: a test's bulk insert of 40,000 rows passed the production 10 s on
  // a loaded CI machine. The tests of timeouts set their own.
  return { ...loadConfig({ LOG_LEVEL: 'silent', DB_POOL_MAX: '4', AUTH_CACHE_TTL_MS: '0', PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '0', PRESSURE_MAX_EVENT_LOOP_UTILIZATION: '0', AUTH_FAILURE_LIMIT: '0', DB_STATEMENT_TIMEOUT_MS: '60000' }), ...overrides }
}

/**
 * The real app (buildApp, as production) on its own database. It logs at debug level into a
 * capture that is searched, when the test ends, for every secret the tests handed out.
 */
export async function buildTestApp (t: Tap, overrides: Partial<Config> = {}): Promise<App> {
  const url = await createTestDatabase(t)
  const config = { ...testConfig(overrides), DATABASE_URL: url }
  for (const secret of [url, config.ROOT_ACCESS_TOKEN, config.INGEST_KEY, config.METRICS_TOKEN, config.REDIS_URL]) registerSecret(secret)
  const logs = captureLogs()
  const app = await buildApp(config, { logger: { ...loggerOptions(overrides.LOG_LEVEL ?? 'debug'), stream: logs.stream } })
  t.teardown(async () => {
    await app.close()
    // Thrown, not asserted: tap takes no assertion once a test has ended; a throw fails it.
    const leaks = logs.leaks()
    if (leaks.length > 0) throw new Error(`secrets in the app's log lines:\n${leaks.join('\n')}`)
  })
  return app
}

export interface TestUser {
  id: number
  username: string
  token: string
  /** Authorization + New-Api-User, as a client sends them */
  headers: { authorization: string, 'new-api-user': string }
}

export async function createUser (db: Kysely<Database>, fields: { username?: string, role?: number, status?: number, group?: string } = {}): Promise<TestUser> {
  const token = randomBytes(16).toString('hex')
  const username = fields.username ?? `user_${randomBytes(4).toString('hex')}`
  const row = await db.insertInto('users')
    .values({ username, role: fields.role ?? 1, status: fields.status ?? 1, access_token: token, group: fields.group ?? 'default' })
    .returning('id')
    .executeTakeFirstOrThrow()
  registerSecret(token)
  return { id: row.id, username, token, headers: { authorization: `Bearer ${token}`, 'new-api-user': String(row.id) } }
}

export async function createApiKey (db: Kysely<Database>, userId: number, fields: { name?: string, status?: number, deleted?: boolean } = {}): Promise<{ id: number, key: string }> {
  const key = randomBytes(24).toString('hex')
  const row = await db.insertInto('tokens')
    .values({ user_id: userId, key, name: fields.name ?? 'default', status: fields.status ?? 1, deleted_at: fields.deleted === true ? new Date() : null })
    .returning('id')
    .executeTakeFirstOrThrow()
  registerSecret(key)
  return { id: row.id, key }
}

/** Inserts log rows (defaults for every column but user_id, created_at and type); returns their ids in order. */
export async function insertLogs (db: Kysely<Database>, rows: Array<Insertable<LogsTable>>): Promise<number[]> {
  if (rows.length === 0) return []
  const inserted = await db.insertInto('logs').values(rows).returning('id').execute()
  return inserted.map((r) => r.id)
}
