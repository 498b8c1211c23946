import type { Insertable, Kysely } from 'kysely'
import type { App } from '../../src/app.js'
import type { Database, LogsTable } from '../../src/db/types.js'
import { buildTestApp, createUser, insertLogs, type TestUser } from './app.js'

// Fixtures for the list and search routes: who calls them, and rows known by label or by position.

/** The app on its own database, an admin (role 10) and the users alice and bob. */
export interface Cast {
  app: App
  admin: TestUser
  alice: TestUser
  bob: TestUser
}

export async function buildCast (t: Parameters<typeof buildTestApp>[0], overrides?: Parameters<typeof buildTestApp>[1]): Promise<Cast> {
  const app = await buildTestApp(t, overrides)
  const admin = await createUser(app.db, { role: 10, username: 'admin' })
  const alice = await createUser(app.db, { username: 'alice' })
  const bob = await createUser(app.db, { username: 'bob' })
  return { app, admin, alice, bob }
}

/** Inserts the rows in the order given; returns each label's id. */
export async function insertLabelled (db: Kysely<Database>, labelled: Array<[string, Insertable<LogsTable>]>): Promise<Record<string, number>> {
  const ids = await insertLogs(db, labelled.map(([, row]) => row))
  return Object.fromEntries(labelled.map(([label], i) => [label, ids[i]!]))
}

/**
 * Inserts the rows in the order given; returns a function that gives the ids of the rows at
 * some positions in the routes' order: created_at desc, then id desc.
 */
export async function insertOrdered (db: Kysely<Database>, rows: Array<Insertable<LogsTable>>): Promise<(positions: number[]) => number[]> {
  const ids = await insertLogs(db, rows)
  return (positions) => positions
    .map((i) => ({ id: ids[i]!, created: rows[i]!.created_at as number }))
    .sort((x, y) => y.created - x.created || y.id - x.id)
    .map((r) => r.id)
}
