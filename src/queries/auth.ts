import type { Kysely } from 'kysely'
import { prepared } from '../db/plan.js'
import type { Database } from '../db/types.js'
import { TokenStatus, UserStatus } from '../domain.js'

export interface AuthUser {
  id: number
  username: string
  role: number
  status: number
}

export interface ApiKeyOwner {
  tokenId: number
  userId: number
}

/** Served by the unique index on users.access_token. */
export async function findUserByAccessToken (db: Kysely<Database>, accessToken: string): Promise<AuthUser | undefined> {
  return await db.selectFrom('users')
    .select(['id', 'username', 'role', 'status'])
    .where('access_token', '=', accessToken)
    .withPlugin(prepared('auth-user'))
    .executeTakeFirst()
}

/**
 * A key that can read its logs: not deleted, not disabled, owner enabled. Expired and exhausted
 * keys still see their history. Served by the unique index on tokens.key.
 */
export async function findTokenByKey (db: Kysely<Database>, key: string): Promise<ApiKeyOwner | undefined> {
  return await db.selectFrom('tokens')
    .innerJoin('users', 'users.id', 'tokens.user_id')
    .select(['tokens.id as tokenId', 'tokens.user_id as userId'])
    .where('tokens.key', '=', key)
    .where('tokens.deleted_at', 'is', null)
    .where('tokens.status', '<>', TokenStatus.disabled)
    .where('users.status', '=', UserStatus.enabled)
    .withPlugin(prepared('auth-key'))
    .executeTakeFirst()
}
