import { sql, type Kysely } from 'kysely'

// The contract's four tables, with new-api's names and types so that a database a new-api
// deployment wrote can be served (IF NOT EXISTS: existing tables are kept as they are).

export async function up (db: Kysely<any>): Promise<void> {
  // Trusted extension since PostgreSQL 13: the database owner may create it, no superuser needed.
  await sql`create extension if not exists pg_trgm`.execute(db)

  await sql`
    create table if not exists users (
      id serial primary key,
      username text not null unique,
      display_name text default '',
      role int not null default 1,
      status int not null default 1,
      access_token varchar(64) unique null,
      "group" varchar(64) not null default 'default'
    )`.execute(db)

  await sql`
    create table if not exists tokens (
      id serial primary key,
      user_id int not null,
      key varchar(128) not null unique,
      name text not null default '',
      status int not null default 1,
      deleted_at timestamptz null
    )`.execute(db)

  await sql`
    create table if not exists channels (
      id serial primary key,
      name text not null default ''
    )`.execute(db)

  await sql`
    create table if not exists logs (
      id bigserial primary key,
      user_id int not null,
      created_at bigint not null,
      type int not null,
      content text not null default '',
      username text not null default '',
      token_name text not null default '',
      model_name text not null default '',
      quota bigint not null default 0,
      prompt_tokens int not null default 0,
      completion_tokens int not null default 0,
      use_time int not null default 0,
      is_stream boolean not null default false,
      channel_id int not null default 0,
      token_id int not null default 0,
      "group" text not null default '',
      ip text not null default '',
      request_id varchar(64) not null default '',
      other text not null default ''
    )`.execute(db)

  // Admin list without filters and with a time window (ORDER BY created_at DESC, id DESC walks it
  // backwards); the purge picks its batches through it (created_at < T); rpm/tpm's 60 s window.
  await sql`create index if not exists idx_logs_created_at_id on logs (created_at, id)`.execute(db)
  // Self list, its total and self stat: one user's rows in time order, whatever the window. Also
  // removes new-api's worst case: a user with no recent rows scanning the whole table (2 s at 10M).
  // Covering: every other filter of /self and the sums of self stat are read from the index
  // alone, so a heavy user's filtered page or partial-day sum never visits the heap row by row.
  await sql`
    create index if not exists idx_logs_user_created_id on logs (user_id, created_at, id)
    include (type, quota, prompt_tokens, completion_tokens, model_name, token_name, "group")`.execute(db)
  // GET /api/log/token: one key's rows, newest first.
  await sql`create index if not exists idx_logs_token_created_id on logs (token_id, created_at, id)`.execute(db)
  // Admin stat: sum(quota) by type over a window, and rpm/tpm, as index-only scans.
  await sql`create index if not exists idx_logs_type_created_cov on logs (type, created_at) include (quota, prompt_tokens, completion_tokens)`.execute(db)
  // Admin filters by model, username, token name and channel, each with a window or the list order.
  // With id a page's ids come in list order straight from the index (no sort, stop after 20), so
  // the planner prefers it to walking (created_at, id) and testing every row, which costs the whole
  // table when nothing matches; type is included so that a type filter too stays index-only.
  await sql`create index if not exists idx_logs_model_created on logs (model_name, created_at, id) include (type)`.execute(db)
  await sql`create index if not exists idx_logs_username_created on logs (username, created_at, id) include (type)`.execute(db)
  await sql`create index if not exists idx_logs_token_name_created on logs (token_name, created_at, id) include (type)`.execute(db)
  await sql`create index if not exists idx_logs_channel_created on logs (channel_id, created_at, id) include (type)`.execute(db)
  // request_id filter: exact lookups; rows without one stay out of the index.
  await sql`create index if not exists idx_logs_request_id on logs (request_id) where request_id <> ''`.execute(db)
  // Search: content ILIKE '%keyword%' (research: rare keyword 5.3 s -> 1.3 ms at 10M rows).
  await sql`create index if not exists idx_logs_content_trgm on logs using gin (content gin_trgm_ops)`.execute(db)
  // Key lookups join the owner; token listing per user.
  await sql`create index if not exists idx_tokens_user_id on tokens (user_id)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`drop table if exists logs, channels, tokens, users`.execute(db)
}
