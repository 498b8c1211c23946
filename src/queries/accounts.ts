import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/types.js'

// Users, API keys and channels as the operators' CLI manages them. Secrets go in and never come
// back out: listings say whether a user has an access token and show a key's first characters only.

export interface NewUser {
  username: string
  displayName: string
  role: number
  group: string
  accessToken: string
}

export interface UserRow {
  id: number
  username: string
  display_name: string | null
  role: number
  status: number
  group: string
  has_token: boolean
}

export interface UserRef {
  id: number
  username: string
}

/** The new user's id; a taken username fails with PostgreSQL's unique violation (23505). */
export async function insertUser (db: Kysely<Database>, user: NewUser): Promise<number> {
  const row = await db.insertInto('users')
    .values({ username: user.username, display_name: user.displayName, role: user.role, access_token: user.accessToken, group: user.group })
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

export async function listUsers (db: Kysely<Database>): Promise<UserRow[]> {
  return await db.selectFrom('users')
    .select(['id', 'username', 'display_name', 'role', 'status', 'group', sql<boolean>`access_token is not null`.as('has_token')])
    .orderBy('id')
    .execute()
}

/** A user by id or by username (served by the primary key or the unique index on username). */
export async function findUser (db: Kysely<Database>, ref: { id: number } | { username: string }): Promise<UserRef | undefined> {
  const query = db.selectFrom('users').select(['id', 'username'])
  return await ('id' in ref ? query.where('id', '=', ref.id) : query.where('username', '=', ref.username)).executeTakeFirst()
}

/** Whether the user exists (and now has that status). */
export async function setUserStatus (db: Kysely<Database>, id: number, status: number): Promise<boolean> {
  const r = await db.updateTable('users').set({ status }).where('id', '=', id).executeTakeFirst()
  return r.numUpdatedRows > 0n
}

export async function setUserRole (db: Kysely<Database>, id: number, role: number): Promise<boolean> {
  const r = await db.updateTable('users').set({ role }).where('id', '=', id).executeTakeFirst()
  return r.numUpdatedRows > 0n
}

export interface TokenRow {
  id: number
  user_id: number
  username: string | null
  name: string
  status: number
  deleted_at: Date | null
  /** the key's first 4 characters: enough to tell keys apart, nowhere near enough to use one */
  key_prefix: string
}

/** `key` is stored without new-api's `sk-` prefix, as the gateway stores it. */
export async function insertToken (db: Kysely<Database>, token: { userId: number, key: string, name: string }): Promise<number> {
  const row = await db.insertInto('tokens')
    .values({ user_id: token.userId, key: token.key, name: token.name })
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

/** Keys, oldest first; deleted ones (deleted_at set, as new-api soft-deletes) only when asked. */
export async function listTokens (db: Kysely<Database>, opts: { userId?: number, includeDeleted?: boolean } = {}): Promise<TokenRow[]> {
  let query = db.selectFrom('tokens')
    .leftJoin('users', 'users.id', 'tokens.user_id')
    .select(['tokens.id', 'tokens.user_id', 'users.username', 'tokens.name', 'tokens.status', 'tokens.deleted_at', sql<string>`left(tokens.key, 4)`.as('key_prefix')])
    .orderBy('tokens.id')
  if (opts.userId !== undefined) query = query.where('tokens.user_id', '=', opts.userId)
  if (opts.includeDeleted !== true) query = query.where('tokens.deleted_at', 'is', null)
  return await query.execute()
}

/** Whether a key with that id exists and is not deleted (and now has that status). */
export async function setTokenStatus (db: Kysely<Database>, id: number, status: number): Promise<boolean> {
  const r = await db.updateTable('tokens').set({ status }).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst()
  return r.numUpdatedRows > 0n
}

/**
 * Creates or renames the channel `id`. An explicit id does not move the serial's sequence, so it
 * is moved past the largest id: a later insert without an id must not collide with this one.
 */
export async function upsertChannel (db: Kysely<Database>, id: number, name: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('channels').values({ id, name })
      .onConflict((oc) => oc.column('id').doUpdateSet({ name }))
      .execute()
    await sql`select setval(pg_get_serial_sequence('channels', 'id'), greatest((select max(id) from channels), 1))`.execute(trx)
  })
}

export async function listChannels (db: Kysely<Database>): Promise<Array<{ id: number, name: string }>> {
  return await db.selectFrom('channels').select(['id', 'name']).orderBy('id').execute()
}
