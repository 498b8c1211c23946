// The contract's item field lists (spec/log-api.md, "Log row"), written out here rather than taken
// from src/schemas, so that a schema that drifts from the contract fails the tests.

export const USER_FIELDS = [
  'id', 'user_id', 'created_at', 'type', 'content', 'token_name', 'model_name', 'quota',
  'prompt_tokens', 'completion_tokens', 'use_time', 'is_stream', 'group', 'request_id'
].sort()

export const ADMIN_FIELDS = [
  ...USER_FIELDS, 'username', 'channel_id', 'channel_name', 'token_id', 'ip', 'other'
].sort()
