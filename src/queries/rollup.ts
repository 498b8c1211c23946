import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/types.js'

/**
 * Folds the deltas the triggers appended into the rollups, in one statement (a reader
 * sees the deltas either before or after the fold, never both). Returns the delta rows folded.
 * Only this function updates rollup rows, so writers never wait on each other here.
 */
export async function foldStatDeltas (db: Kysely<Database>): Promise<number> {
  return await db.transaction().execute(async (trx) => {
    const { rows: [lock] } = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtextextended('log-service:stat-fold', 0)) as ok`.execute(trx)
    if (lock?.ok !== true) return 0
    const { rows: [moved] } = await sql<{ n: number, emptied_user: string, emptied_all: string }>`
      with moved as (
        delete from logs_stat_delta returning *
      ), per_hour as (
        select hour, type, sum(n) as n, sum(quota) as quota, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens, count(*) as rows
        from moved group by 1, 2
      ), per_user_day as (
        select user_id, hour / 24 as day, type, sum(n) as n, sum(quota) as quota, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens
        from moved group by 1, 2, 3
      ), into_user as (
        insert into logs_stat_daily_user as r (user_id, day, type, n, quota, prompt_tokens, completion_tokens)
        select user_id, day, type, n, quota, prompt_tokens, completion_tokens from per_user_day
        on conflict (user_id, day, type) do update set
          n = r.n + excluded.n, quota = r.quota + excluded.quota,
          prompt_tokens = r.prompt_tokens + excluded.prompt_tokens, completion_tokens = r.completion_tokens + excluded.completion_tokens
        returning r.user_id, r.day, r.type, r.n
      ), into_all as (
        insert into logs_stat_hourly as r (hour, type, n, quota, prompt_tokens, completion_tokens)
        select hour, type, n, quota, prompt_tokens, completion_tokens from per_hour
        on conflict (hour, type) do update set
          n = r.n + excluded.n, quota = r.quota + excluded.quota,
          prompt_tokens = r.prompt_tokens + excluded.prompt_tokens, completion_tokens = r.completion_tokens + excluded.completion_tokens
        returning r.hour, r.type, r.n
      )
      select
        (select coalesce(sum(rows), 0)::int8 from per_hour) as n,
        (select coalesce(json_agg(json_build_array(user_id, day, type)), '[]')::text from into_user where n = 0) as emptied_user,
        (select coalesce(json_agg(json_build_array(hour, type)), '[]')::text from into_all where n = 0) as emptied_all`.execute(trx)
    const folded = moved?.n ?? 0
    // Hours and days emptied by a purge would otherwise stay behind as rows of zeros.
    if (moved !== undefined && moved.emptied_user !== '[]') {
      await sql`
        delete from logs_stat_daily_user r using json_array_elements(${moved.emptied_user}::json) e
        where r.user_id = (e->>0)::int and r.day = (e->>1)::int8 and r.type = (e->>2)::int and r.n = 0`.execute(trx)
    }
    if (moved !== undefined && moved.emptied_all !== '[]') {
      await sql`
        delete from logs_stat_hourly r using json_array_elements(${moved.emptied_all}::json) e
        where r.hour = (e->>0)::int8 and r.type = (e->>1)::int and r.n = 0`.execute(trx)
    }
    return folded
  })
}

/** VACUUM (outside any transaction) of the stat tables named; skips a table someone else holds. */
export async function vacuumStatTables (db: Kysely<Database>, tables: Array<'logs_stat_delta' | 'logs_stat_hourly' | 'logs_stat_daily_user'>): Promise<void> {
  await sql`vacuum (skip_locked) ${sql.join(tables.map((t) => sql.table(t)))}`.execute(db)
}
