import { sql, type Kysely } from 'kysely'
import type { Database } from '../../db/types.js'
import { exactSums } from '../rollups/read.js'
import { planFor, rollupAnswers, whereLogs, type LogFilter } from './filter.js'

export interface LogStat {
  quota: number
  rpm: number
  tpm: number
}

/** The seconds rpm and tpm count back from now (both ends included). */
export const RECENT_SECONDS = 60

async function quotaOf (db: Kysely<Database>, f: LogFilter): Promise<number> {
  if (rollupAnswers(f)) return (await exactSums(db, f)).quota
  const row = await db.selectFrom('logs')
    .select(sql<number>`coalesce(sum(logs.quota), 0)::int8`.as('quota'))
    .where((eb) => whereLogs(eb, f))
    .withPlugin(planFor(f, 'stat-quota'))
    .executeTakeFirstOrThrow()
  return row.quota
}

async function recentOf (db: Kysely<Database>, f: LogFilter, nowSeconds: number): Promise<{ rpm: number, tpm: number }> {
  const recent = { ...f, startTimestamp: nowSeconds - RECENT_SECONDS, endTimestamp: undefined }
  // [now - 60, now]: a row stamped in the future (a clock gone wrong) is not "in the last minute".
  // The upper end is a FILTER on the aggregates, not a WHERE bound: the WHERE clause, and with it
  // the prepared statement's generic plan, stays the one-sided range it was measured with.
  const upTo = sql`logs.created_at <= ${nowSeconds}`
  return await db.selectFrom('logs')
    .select(sql<number>`count(*) filter (where ${upTo})`.as('rpm'))
    .select(sql<number>`coalesce(sum(logs.prompt_tokens::int8 + logs.completion_tokens) filter (where ${upTo}), 0)::int8`.as('tpm'))
    .where((eb) => whereLogs(eb, recent))
    .withPlugin(planFor(recent, 'stat-recent'))
    .executeTakeFirstOrThrow()
}

/**
 * quota over [start, end]; rpm and tpm over the last 60 seconds with the same filters but no
 * window. Two explicit aggregates (new-api scans both into one struct and loses quota, #7106).
 */
export async function statLogs (db: Kysely<Database>, f: LogFilter, nowSeconds: number): Promise<LogStat> {
  const [quota, recent] = await Promise.all([quotaOf(db, f), recentOf(db, f, nowSeconds)])
  return { quota, ...recent }
}
