import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  // A purge drops the per-user rollup rows of whole hours and days below its target in one
  // statement (queries/purge.ts); their primary keys lead with user_id, so without these it would
  // read every user's rows for each unit.
  await sql`create index if not exists logs_stat_hourly_user_hour on logs_stat_hourly_user (hour)`.execute(db)
  await sql`create index if not exists logs_stat_daily_user_day on logs_stat_daily_user (day)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`drop index if exists logs_stat_daily_user_day`.execute(db)
  await sql`drop index if exists logs_stat_hourly_user_hour`.execute(db)
}
