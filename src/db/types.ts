import type { Generated } from 'kysely'

// int8 columns (ids, created_at, quota) and count(*) arrive as JS numbers: the pool installs an
// INT8 type parser (see db/pool.ts), so the types say number, not string.

export interface UsersTable {
  id: Generated<number>
  username: string
  display_name: Generated<string>
  role: Generated<number>
  status: Generated<number>
  access_token: string | null
  group: Generated<string>
}

export interface TokensTable {
  id: Generated<number>
  user_id: number
  key: string
  name: Generated<string>
  status: Generated<number>
  deleted_at: Date | null
}

export interface ChannelsTable {
  id: Generated<number>
  name: Generated<string>
}

export interface LogsTable {
  id: Generated<number>
  user_id: number
  created_at: number
  type: number
  content: Generated<string>
  username: Generated<string>
  token_name: Generated<string>
  model_name: Generated<string>
  quota: Generated<number>
  prompt_tokens: Generated<number>
  completion_tokens: Generated<number>
  use_time: Generated<number>
  is_stream: Generated<boolean>
  channel_id: Generated<number>
  token_id: Generated<number>
  group: Generated<string>
  ip: Generated<string>
  request_id: Generated<string>
  other: Generated<string>
}

/** Sums of rows by type; kept exact by triggers on logs. */
export interface StatSums {
  type: number
  n: number
  quota: number
  prompt_tokens: number
  completion_tokens: number
}

export interface Database {
  users: UsersTable
  tokens: TokensTable
  channels: ChannelsTable
  logs: LogsTable
  logs_stat_hourly: StatSums & { hour: number }
  logs_stat_minutely: StatSums & { minute: number }
  logs_stat_daily_user: StatSums & { user_id: number, day: number }
  logs_stat_hourly_user: StatSums & { user_id: number, hour: number }
  logs_stat_delta: StatSums & { user_id: number, minute: number }
}
