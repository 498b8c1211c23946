import { createHash } from 'node:crypto'
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

/**
 * What credentials are looked up by: the SHA-256 of their UTF-8 bytes, the same digest as the
 * generated columns users.access_token_sha256 and tokens.key_sha256 (migrations/2026-12-01T0000).
 */
export function credentialDigest (credential: string): Buffer {
  return createHash('sha256').update(credential, 'utf8').digest()
}

/** Served by the unique index on users.access_token_sha256. */
export async function findUserByAccessToken (db: Kysely<Database>, tokenDigest: Buffer): Promise<AuthUser | undefined> {
  return await db.selectFrom('users')
    .select(['id', 'username', 'role', 'status'])
    .where('access_token_sha256', '=', tokenDigest)
    .withPlugin(prepared('auth-user'))
    .executeTakeFirst()
}

/**
 * A key that can read its logs: not deleted, not disabled, owner enabled. Expired and exhausted
 * keys still see their history. Served by the unique index on tokens.key_sha256.
 */
export async function findTokenByKey (db: Kysely<Database>, keyDigest: Buffer): Promise<ApiKeyOwner | undefined> {
  return await db.selectFrom('tokens')
    .innerJoin('users', 'users.id', 'tokens.user_id')
    .select(['tokens.id as tokenId', 'tokens.user_id as userId'])
    .where('tokens.key_sha256', '=', keyDigest)
    .where('tokens.deleted_at', 'is', null)
    .where('tokens.status', '<>', TokenStatus.disabled)
    .where('users.status', '=', UserStatus.enabled)
    .withPlugin(prepared('auth-key'))
    .executeTakeFirst()
}
