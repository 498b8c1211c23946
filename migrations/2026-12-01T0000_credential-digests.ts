import { sql, type Kysely } from 'kysely'

// Credentials are looked up by their SHA-256 digest: a B-tree walk over digests leaks, to someone
// timing answers, only how much of a digest they guessed, which says nothing about the secret,
// and the statement sent to the database carries no plaintext (nor would a statement log).
//
// Generated columns, so they follow whatever writes users and tokens (the gateway itself, by
// SQL). A generated column needs an immutable expression; convert_to() is only stable because the
// target encoding could change, and here it is a constant, so the wrapper may say immutable.
// Adding a stored column rewrites users and tokens under an exclusive lock: seconds for a
// million keys, and these tables are small next to logs.
export async function up (db: Kysely<any>): Promise<void> {
  await sql`create or replace function log_service_sha256(value text) returns bytea
    language sql immutable strict parallel safe
    as $$ select sha256(convert_to(value, 'UTF8')) $$`.execute(db)
  await sql`alter table users add column access_token_sha256 bytea generated always as (log_service_sha256(access_token)) stored`.execute(db)
  await sql`alter table tokens add column key_sha256 bytea generated always as (log_service_sha256(key)) stored`.execute(db)
  await sql`create unique index users_access_token_sha256_key on users (access_token_sha256)`.execute(db)
  await sql`create unique index tokens_key_sha256_key on tokens (key_sha256)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`alter table users drop column access_token_sha256`.execute(db)
  await sql`alter table tokens drop column key_sha256`.execute(db)
  await sql`drop function log_service_sha256(text)`.execute(db)
}
