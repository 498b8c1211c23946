import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { describeLogTypes, LOG_TYPE_MAX, LOG_TYPE_MIN } from '../domain.js'
import { compileStrict, describeIssue } from '../lib/validator.js'
import { Envelope, ref } from './common.js'
import { ingestedExample, ingestRowExample } from './examples.js'

// One log row as a gateway writes it (POST /api/log/, a JSON array or NDJSON lines). Strict:
// unknown fields are refused rather than dropped, so a misspelt `model` fails loudly instead of
// storing an empty model_name; nothing is coerced ("5" is not a number here).

export const INGEST_BATCH_MAX = 1000

const INT4_MAX = 2_147_483_647
// PostgreSQL text cannot hold NUL, nor UTF-8 half a surrogate pair, which a JSON string can
// escape ("\ud800"): refused here, not stored as U+FFFD or failed by the database. Ajv matches
// patterns as Unicode (the u flag), where only an unpaired surrogate falls in the range.
const TEXT_PATTERN = '^[^\\u0000\\ud800-\\udfff]*$'
const text = (maxLength: number, description?: string) => Type.String({ maxLength, pattern: TEXT_PATTERN, ...(description === undefined ? {} : { description }) })
const count = (description?: string) => Type.Integer({ minimum: 0, maximum: INT4_MAX, ...(description === undefined ? {} : { description }) })
const opt = <T extends TSchema>(schema: T) => Type.Optional(schema)

export const IngestRowSchema = Type.Object({
  user_id: Type.Integer({ minimum: 1, maximum: INT4_MAX, description: 'the user the row belongs to (users.id); not checked against users, so rows may arrive before the user' }),
  type: Type.Integer({ minimum: LOG_TYPE_MIN, maximum: LOG_TYPE_MAX, description: describeLogTypes() }),
  created_at: opt(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'unix seconds; default: when the service received the row' })),
  content: opt(text(65_535)),
  username: opt(text(255)),
  token_name: opt(text(255)),
  model_name: opt(text(255)),
  quota: opt(Type.Integer({ minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER })),
  prompt_tokens: opt(count()),
  completion_tokens: opt(count()),
  use_time: opt(count('seconds')),
  is_stream: opt(Type.Boolean()),
  channel_id: opt(count('channels.id, 0 = none')),
  token_id: opt(count('tokens.id, 0 = none')),
  group: opt(text(255)),
  ip: opt(text(64)),
  request_id: opt(text(64, 'default: a new random id (32 hex digits)')),
  other: opt(text(65_535, 'JSON-encoded string, stored as given'))
}, { $id: 'IngestLogRow', title: 'IngestLogRow', additionalProperties: false, examples: [ingestRowExample] })

export type IngestRow = Static<typeof IngestRowSchema>

const validateRow = compileStrict<IngestRow>(IngestRowSchema)

/** What is wrong with a row, naming the field (`model_name must be string`); undefined when it is a valid row. */
export function rowProblem (value: unknown): string | undefined {
  const issue = validateRow(value)
  if (issue === undefined) return undefined
  // The one pattern of the schema: Ajv would quote the regular expression.
  if (issue.keyword === 'pattern') return `${issue.instancePath.replace(/^\//, '')} must not contain NUL characters or unpaired surrogates`
  return describeIssue(issue, 'row')
}

export const IngestBatchSchema = Type.Array(ref(IngestRowSchema), {
  minItems: 1,
  maxItems: INGEST_BATCH_MAX,
  description: `1..${INGEST_BATCH_MAX} rows, written in one statement: all or none`
})

export const IngestedCountResponseSchema = Envelope(Type.Integer({ description: 'rows written' }), {
  $id: 'IngestedCountResponse',
  description: 'The number of rows written',
  examples: [ingestedExample]
})
