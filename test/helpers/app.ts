import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Insertable, Kysely } from 'kysely'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import type { Database, LogsTable } from '../../src/db/types.js'
import { databaseUrl, readState, TEMPLATE_DB } from './state.js'

type Tap = { teardown: (fn: () => unknown) => void }

/** A fresh database cloned from the migrated template, dropped when the test ends. */
export async function createTestDatabase (t: Tap): Promise<string> {
  const { adminUrl } = readState()
  const name = `log_test_${randomUUID().replace(/-/g, '')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(`create database ${name} template ${TEMPLATE_DB}`)
  } finally {
    await admin.end()
  }
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: adminUrl })
    await c.connect()
    try {
      await c.query(`drop database if exists ${name} with (force)`)
    } finally {
      await c.end()
    }
  })
  return databaseUrl(adminUrl, name)
}

/** The configuration a test app runs with: the schema's defaults, quiet, no auth cache. */
export function testConfig (overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ LOG_LEVEL: 'silent', DB_POOL_MAX: '4', AUTH_CACHE_TTL_MS: '0' }), ...overrides }
}

/** The real app (buildApp, as production) on its own database. */
export async function buildTestApp (t: Tap, overrides: Partial<Config> = {}): Promise<App> {
  const url = await createTestDatabase(t)
  const app = await buildApp({ ...testConfig(overrides), DATABASE_URL: url })
  t.teardown(() => app.close())
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
  return { id: row.id, username, token, headers: { authorization: `Bearer ${token}`, 'new-api-user': String(row.id) } }
}

export async function createApiKey (db: Kysely<Database>, userId: number, fields: { name?: string, status?: number, deleted?: boolean } = {}): Promise<{ id: number, key: string }> {
  const key = randomBytes(24).toString('hex')
  const row = await db.insertInto('tokens')
    .values({ user_id: userId, key, name: fields.name ?? 'default', status: fields.status ?? 1, deleted_at: fields.deleted === true ? new Date() : null })
    .returning('id')
    .executeTakeFirstOrThrow()
  return { id: row.id, key }
}

/** Inserts log rows (defaults for every column but user_id, created_at and type); returns their ids in order. */
export async function insertLogs (db: Kysely<Database>, rows: Array<Insertable<LogsTable>>): Promise<number[]> {
  if (rows.length === 0) return []
  const inserted = await db.insertInto('logs').values(rows).returning('id').execute()
  return inserted.map((r) => r.id)
}
