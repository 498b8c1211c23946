import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type { Database } from './db/types.js'
import { Role, UserStatus } from './domain.js'

export interface BootstrapResult {
  created: boolean
  userId?: number
  /** Only when generated here; a token taken from the environment is never echoed. */
  generatedToken?: string
}

/**
 * First start on an empty `users` table: a root user, so there is a way in. Takes the token from
 * ROOT_ACCESS_TOKEN when given, else a fresh random one. Safe against two processes starting at
 * once (the insert only happens while the table is empty, under a transaction-level lock).
 */
export async function ensureRootUser (db: Kysely<Database>, accessToken?: string): Promise<BootstrapResult> {
  const token = accessToken ?? randomBytes(24).toString('base64url')
  return await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtextextended('log-service:bootstrap', 0))`.execute(trx)
    const existing = await trx.selectFrom('users').select('id').limit(1).executeTakeFirst()
    if (existing !== undefined) return { created: false }
    const row = await trx.insertInto('users')
      .values({ username: 'root', display_name: 'Root User', role: Role.root, status: UserStatus.enabled, access_token: token })
      .returning('id')
      .executeTakeFirstOrThrow()
    return accessToken === undefined
      ? { created: true, userId: row.id, generatedToken: token }
      : { created: true, userId: row.id }
  })
}
