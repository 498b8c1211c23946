import { sql, type Kysely } from 'kysely'

// Rollups of logs, kept exact by triggers, so that stats and list totals over any window read a
// few hundred small rows instead of up to millions of log rows (research/perf-limits.md: a 30-day
// sum takes 731 ms on a covering index, 1.5 ms from a rollup).
//
// Two grains per scope, so that a window's ragged ends cost little too:
//   the site:     per (hour, type), and per (minute, type) for the partial hours at either end;
//   each user:    per (user, day, type), and per (user, hour, type) for the partial days.
// What is left, the partial minutes (site) or hours (user), is read from logs through an index.
//
// A history purge adjusts the rollups itself, batch by batch, in the batch's transaction (it turns
// the triggers off for its own session with log_service.stat_capture = off).
//
// Writers never touch the rollups: a statement-level trigger appends one row per (user, minute,
// type) of each INSERT/DELETE/UPDATE statement to logs_stat_delta, which has no keys and so no lock
// contention between concurrent inserts. The service folds the deltas into the rollups in the
// background (queries/rollup.ts); readers add the rollups and the pending deltas, so every answer
// is exact whether or not the fold has run. Unit 0 of any grain (which integer division also fills
// with negative timestamps) is never read from the rollups: rows before the first whole unit of
// the finer grain are read from logs.

const sums = sql`
  n bigint not null,
  quota bigint not null,
  prompt_tokens bigint not null,
  completion_tokens bigint not null`

export async function up (db: Kysely<any>): Promise<void> {
  await sql`create table logs_stat_hourly (hour bigint not null, type int not null, ${sums}, primary key (hour, type))`.execute(db)
  await sql`create table logs_stat_minutely (minute bigint not null, type int not null, ${sums}, primary key (minute, type))`.execute(db)
  await sql`create table logs_stat_daily_user (user_id int not null, day bigint not null, type int not null, ${sums}, primary key (user_id, day, type))`.execute(db)
  await sql`create table logs_stat_hourly_user (user_id int not null, hour bigint not null, type int not null, ${sums}, primary key (user_id, hour, type))`.execute(db)
  await sql`create table logs_stat_delta (user_id int not null, minute bigint not null, type int not null, ${sums})`.execute(db)
  // Readers take the pending deltas of their window (and user) only: after a large purge there can
  // be millions until the fold catches up.
  await sql`create index logs_stat_delta_minute on logs_stat_delta (minute)`.execute(db)
  await sql`create index logs_stat_delta_user_minute on logs_stat_delta (user_id, minute)`.execute(db)

  await sql`
    create function logs_stat_on_insert() returns trigger language plpgsql as $$
    begin
      if current_setting('log_service.stat_capture', true) = 'off' then return null; end if;
      insert into logs_stat_delta
      select user_id, created_at / 60, type, count(*), sum(quota), sum(prompt_tokens), sum(completion_tokens)
      from new_rows group by 1, 2, 3;
      return null;
    end $$`.execute(db)

  await sql`
    create function logs_stat_on_delete() returns trigger language plpgsql as $$
    begin
      if current_setting('log_service.stat_capture', true) = 'off' then return null; end if;
      insert into logs_stat_delta
      select user_id, created_at / 60, type, -count(*), -sum(quota), -sum(prompt_tokens), -sum(completion_tokens)
      from old_rows group by 1, 2, 3;
      return null;
    end $$`.execute(db)

  await sql`
    create function logs_stat_on_update() returns trigger language plpgsql as $$
    begin
      if current_setting('log_service.stat_capture', true) = 'off' then return null; end if;
      insert into logs_stat_delta
      select user_id, minute, type, sum(n), sum(quota), sum(prompt_tokens), sum(completion_tokens)
      from (
        select user_id, created_at / 60 as minute, type, 1 as n, quota, prompt_tokens::bigint, completion_tokens::bigint from new_rows
        union all
        select user_id, created_at / 60, type, -1, -quota, -prompt_tokens::bigint, -completion_tokens::bigint from old_rows
      ) d group by 1, 2, 3;
      return null;
    end $$`.execute(db)

  await sql`
    create function logs_stat_on_truncate() returns trigger language plpgsql as $$
    begin
      truncate logs_stat_hourly, logs_stat_minutely, logs_stat_daily_user, logs_stat_hourly_user, logs_stat_delta;
      return null;
    end $$`.execute(db)

  // No writes between the triggers' creation and the initial fill: each row counted exactly once.
  await sql`lock table logs in share row exclusive mode`.execute(db)
  await sql`create trigger logs_stat_insert after insert on logs referencing new table as new_rows for each statement execute function logs_stat_on_insert()`.execute(db)
  await sql`create trigger logs_stat_delete after delete on logs referencing old table as old_rows for each statement execute function logs_stat_on_delete()`.execute(db)
  await sql`create trigger logs_stat_update after update on logs referencing old table as old_rows new table as new_rows for each statement execute function logs_stat_on_update()`.execute(db)
  await sql`create trigger logs_stat_truncate after truncate on logs for each statement execute function logs_stat_on_truncate()`.execute(db)

  // Existing rows (a database new-api wrote) as deltas; the service folds them.
  await sql`
    insert into logs_stat_delta
    select user_id, created_at / 60, type, count(*), sum(quota), sum(prompt_tokens), sum(completion_tokens)
    from logs group by 1, 2, 3`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists logs_stat_insert on logs`.execute(db)
  await sql`drop trigger if exists logs_stat_delete on logs`.execute(db)
  await sql`drop trigger if exists logs_stat_update on logs`.execute(db)
  await sql`drop trigger if exists logs_stat_truncate on logs`.execute(db)
  await sql`drop function if exists logs_stat_on_insert, logs_stat_on_delete, logs_stat_on_update, logs_stat_on_truncate`.execute(db)
  await sql`drop table if exists logs_stat_hourly, logs_stat_minutely, logs_stat_daily_user, logs_stat_hourly_user, logs_stat_delta`.execute(db)
}
