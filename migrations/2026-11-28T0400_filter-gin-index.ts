import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  // Trusted extension since PostgreSQL 13, like pg_trgm: GIN over plain scalar columns.
  await sql`create extension if not exists btree_gin`.execute(db)
  // Lists filtered on two or more of these (channel and model, user and group…) intersect their
  // entries here instead of walking every row of one column's btree (queries/logs.ts,
  // pageWithTotal). fastupdate off: without a vacuum to empty it, the pending list would be read
  // by every such query; each insert adds its six entries to the index directly instead.
  await sql`
    create index if not exists idx_logs_filters_gin on logs
    using gin (user_id, model_name, username, token_name, channel_id, "group") with (fastupdate = off)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`drop index if exists idx_logs_filters_gin`.execute(db)
}
