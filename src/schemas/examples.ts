import { LogType } from '../domain.js'

// Examples for the OpenAPI document: one realistic value per shape, checked against its schema by
// the document's lint (Spectral's example rules) in the test suite.

export const userItemExample = {
  id: 1_048_576,
  user_id: 7,
  created_at: 1_764_460_800,
  type: LogType.consume,
  content: 'model ratio 2.50, completion ratio 4.00, cache ratio 0.10, group ratio 1.00',
  token_name: 'prod-1',
  model_name: 'gpt-4o',
  quota: 1250,
  prompt_tokens: 320,
  completion_tokens: 180,
  use_time: 3,
  is_stream: true,
  group: 'default',
  request_id: '2025113000000012345678990a1b2c3dAbCdEfGh'
}

export const adminItemExample = {
  ...userItemExample,
  username: 'alice',
  channel_id: 5,
  channel_name: 'openai-primary',
  token_id: 31,
  ip: '203.0.113.7',
  other: '{"admin_info":{"use_channel":["5"]},"cache_ratio":0.1,"cache_tokens":0}'
}

const envelope = <T>(data: T) => ({ success: true, message: '', data })

export const pageExample = <T>(item: T) => envelope({ items: [item], total: 1, total_exact: true, page: 1, page_size: 20, next_cursor: null })

export const statExample = envelope({ quota: 125_000, rpm: 12, tpm: 6400 })

export const deletedExample = envelope(300_000)

export const errorExample = { success: false, message: 'page_size must be <= 100', code: 'LOG_BAD_PARAMETER' }

/** A row as a gateway writes it: the admin item without what the service adds (id, channel_name). */
export const ingestRowExample = (({ id: _id, channel_name: _channelName, ...row }) => row)(adminItemExample)

export const ingestedExample = envelope(1000)
