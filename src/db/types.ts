import type { Generated } from 'kysely'
import type { RollupTables, StatSums } from '../queries/rollups/model.js'

// int8 columns (ids, created_at, quota) and count(*) arrive as JS numbers: the pool installs an
// INT8 type parser (see db/pool.ts), so the types say number, not string. The rollup tables'
// types are derived from the rollup model (queries/rollups/model.ts).

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

export interface Database extends RollupTables {
  users: UsersTable
  tokens: TokensTable
  channels: ChannelsTable
  logs: LogsTable
  logs_stat_delta: StatSums & { user_id: number, minute: number }
}
