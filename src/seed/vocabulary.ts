// The text the generator draws from: model names and their new-api ratios, user groups, token
// names, channel names and log messages (taken from ../shared/research/perf-scripts/01_schema_and_load.sql,
// the data the reference measurements ran on).

export interface ModelInfo {
  name: string
  /** as new-api prints it in the content: two decimals or more */
  ratio: string
  completionRatio: string
}

export const MODELS: readonly ModelInfo[] = [
  { name: 'gpt-4o', ratio: '1.25', completionRatio: '4.00' },
  { name: 'gpt-4o-mini', ratio: '0.075', completionRatio: '4.00' },
  { name: 'claude-3-5-sonnet-20241022', ratio: '1.50', completionRatio: '5.00' },
  { name: 'gpt-4.1', ratio: '1.00', completionRatio: '4.00' },
  { name: 'gpt-4.1-mini', ratio: '0.20', completionRatio: '4.00' },
  { name: 'deepseek-chat', ratio: '0.135', completionRatio: '4.00' },
  { name: 'deepseek-reasoner', ratio: '0.275', completionRatio: '4.00' },
  { name: 'claude-3-7-sonnet-20250219', ratio: '1.50', completionRatio: '5.00' },
  { name: 'gemini-2.0-flash', ratio: '0.05', completionRatio: '4.00' },
  { name: 'gemini-2.5-pro', ratio: '0.625', completionRatio: '8.00' },
  { name: 'o3-mini', ratio: '0.55', completionRatio: '4.00' },
  { name: 'o1', ratio: '7.50', completionRatio: '4.00' },
  { name: 'qwen-max', ratio: '1.20', completionRatio: '3.00' },
  { name: 'qwen-plus', ratio: '0.40', completionRatio: '3.00' },
  { name: 'glm-4-plus', ratio: '0.50', completionRatio: '1.00' },
  { name: 'text-embedding-3-small', ratio: '0.01', completionRatio: '1.00' },
  { name: 'dall-e-3', ratio: '20.00', completionRatio: '1.00' },
  { name: 'whisper-1', ratio: '15.00', completionRatio: '1.00' },
  { name: 'claude-3-haiku-20240307', ratio: '0.125', completionRatio: '5.00' },
  { name: 'moonshot-v1-8k', ratio: '0.60', completionRatio: '1.00' }
]

/** The first `count` models; past the known 20, `model-<n>` at ratio 1. */
export function modelList (count: number): ModelInfo[] {
  const list = MODELS.slice(0, count)
  for (let i = list.length; i < count; i++) list.push({ name: `model-${i + 1}`, ratio: '1.00', completionRatio: '1.00' })
  return list
}

export interface GroupInfo {
  name: string
  /** share of users, relative */
  weight: number
  ratio: string
}

export const GROUPS: readonly GroupInfo[] = [
  { name: 'default', weight: 60, ratio: '1.00' },
  { name: 'vip', weight: 20, ratio: '0.80' },
  { name: 'svip', weight: 10, ratio: '0.60' },
  { name: 'enterprise', weight: 5, ratio: '0.50' },
  { name: 'free', weight: 5, ratio: '1.50' }
]

/** The first `count` groups (default 60 %, vip 20 %, svip 10 %, enterprise 5 %, free 5 %); extra ones `group-<n>` at weight 5. */
export function groupList (count: number): GroupInfo[] {
  const list = GROUPS.slice(0, count)
  for (let i = list.length; i < count; i++) list.push({ name: `group-${i + 1}`, weight: 5, ratio: '1.00' })
  return list
}

const TOKEN_SLOTS = ['default', 'prod', 'dev', 'cursor', 'batch']

/** default-<u>, prod-<u>, dev-<u>, cursor-<u>, batch-<u>, then key6-<u>, … */
export function tokenName (slot: number, userId: number): string {
  return `${TOKEN_SLOTS[slot] ?? `key${slot + 1}`}-${userId}`
}

const CHANNEL_PROVIDERS = ['openai', 'azure', 'anthropic', 'aws-bedrock', 'vertex', 'deepseek', 'aliyun', 'zhipu', 'moonshot', 'openrouter']

export function channelName (n: number): string {
  return `${CHANNEL_PROVIDERS[(n - 1) % CHANNEL_PROVIDERS.length]}-${n}`
}

/** new-api's quota units per US dollar (QuotaPerUnit). */
export const QUOTA_PER_USD = 500_000
