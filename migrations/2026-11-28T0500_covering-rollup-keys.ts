import { sql, type Kysely } from 'kysely'

// Every total and stat sums n or quota over a range of a rollup's key. With both in the primary
// key's index (INCLUDE), those sums are index-only scans instead of one heap fetch per rollup row
// (a user's total: ≈ 100 daily rows on as many pages; pgbench of the total's statement at 10M
// rows: 8.7k → 16.9k statements/s, bench/RESULTS.md). The price: the fold's updates of n and
// quota are no longer HOT, so they add index entries (a few thousand a second at most), which
// the service's vacuum of the rollups clears.
const TABLES = [
  ['logs_stat_minutely', 'minute, type'],
  ['logs_stat_hourly', 'hour, type'],
  ['logs_stat_hourly_user', 'user_id, hour, type'],
  ['logs_stat_daily_user', 'user_id, day, type']
] as const

export async function up (db: Kysely<any>): Promise<void> {
  for (const [table, keys] of TABLES) {
    await sql`alter table ${sql.table(table)}
      drop constraint ${sql.ref(`${table}_pkey`)},
      add constraint ${sql.ref(`${table}_pkey`)} primary key (${sql.raw(keys)}) include (n, quota)`.execute(db)
  }
}

export async function down (db: Kysely<any>): Promise<void> {
  for (const [table, keys] of TABLES) {
    await sql`alter table ${sql.table(table)}
      drop constraint ${sql.ref(`${table}_pkey`)},
      add constraint ${sql.ref(`${table}_pkey`)} primary key (${sql.raw(keys)})`.execute(db)
  }
}
