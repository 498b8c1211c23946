import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  // Lists and totals filtered by group (5 or so values, so without it a filtered page reads rows
  // until enough of them match): the list order within one group, and a capped count index-only.
  await sql`create index if not exists idx_logs_group_created on logs ("group", created_at, id) include (type)`.execute(db)

  // The delta table is emptied by every fold and read by every stat: where autovacuum runs, have it
  // come early (the service also vacuums it after each fold).
  await sql`alter table logs_stat_delta set (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`alter table logs_stat_delta reset (autovacuum_vacuum_threshold, autovacuum_vacuum_scale_factor)`.execute(db)
  await sql`drop index if exists idx_logs_group_created`.execute(db)
}
