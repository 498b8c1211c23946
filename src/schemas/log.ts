import { Type, type Static } from '@sinclair/typebox'
import { DEFAULT_STAT_TYPE, describeLogTypes, LOG_TYPE_MAX, LOG_TYPE_MIN } from '../domain.js'
import { Envelope, ref } from './common.js'
import { adminItemExample, deletedExample, pageExample, userItemExample } from './examples.js'
import { StatResponseSchema } from './stat.js'

// Wire shapes of a log row. fast-json-stringify writes only the properties listed here, so these
// schemas are what keeps channel_id, channel_name, ip and other away from users.

const userItemProps = {
  id: Type.Integer(),
  user_id: Type.Integer(),
  created_at: Type.Integer({ description: 'unix seconds' }),
  type: Type.Integer({ description: `${describeLogTypes()} (${LOG_TYPE_MIN}..${LOG_TYPE_MAX} stored)` }),
  content: Type.String(),
  token_name: Type.String(),
  model_name: Type.String(),
  quota: Type.Integer(),
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  use_time: Type.Integer({ description: 'seconds' }),
  is_stream: Type.Boolean(),
  group: Type.String(),
  request_id: Type.String()
}

export const UserItemSchema = Type.Object(userItemProps, { $id: 'UserLogItem', title: 'UserLogItem', additionalProperties: false, examples: [userItemExample] })

export const AdminItemSchema = Type.Object({
  ...userItemProps,
  username: Type.String(),
  channel_id: Type.Integer(),
  channel_name: Type.String({ description: 'channels.name; empty when the channel is unknown' }),
  token_id: Type.Integer(),
  ip: Type.String(),
  other: Type.String({ description: 'JSON-encoded string, as stored' })
}, { $id: 'AdminLogItem', title: 'AdminLogItem', additionalProperties: false, examples: [adminItemExample] })

export type UserItem = Static<typeof UserItemSchema>
export type AdminItem = Static<typeof AdminItemSchema>

export const UserItemListSchema = Type.Array(ref(UserItemSchema))
export const AdminItemListSchema = Type.Array(ref(AdminItemSchema))

// ---- query-string pieces shared by the list, stat and search routes ----

const MAX_TIMESTAMP = Number.MAX_SAFE_INTEGER

export const TypeFilterSchema = Type.Integer({ minimum: LOG_TYPE_MIN, maximum: LOG_TYPE_MAX, description: `log type (${describeLogTypes()}; up to ${LOG_TYPE_MAX} stored), 0 = all types` })

/** The stat routes' type: consumption unless asked otherwise. */
export const StatTypeFilterSchema = { ...TypeFilterSchema, default: DEFAULT_STAT_TYPE, description: `log type, default ${DEFAULT_STAT_TYPE} (consume), 0 = all types` }
export const TimestampSchema = Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP, description: 'unix seconds, inclusive' })
const NameSchema = (description: string) => Type.String({ maxLength: 255, description: `${description}; exact match, empty = no filter` })

/** Filters every list and stat route takes (self and admin). */
export const commonFilterProps = {
  start_timestamp: Type.Optional(TimestampSchema),
  end_timestamp: Type.Optional(TimestampSchema),
  token_name: Type.Optional(NameSchema('token name')),
  model_name: Type.Optional(NameSchema('model name')),
  group: Type.Optional(NameSchema('group'))
}

/** Filters only admins may use. */
export const adminFilterProps = {
  username: Type.Optional(NameSchema('username')),
  channel: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'channel id, 0 = all channels' }))
}

export const pageProps = {
  p: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'page, 1-based' })),
  page_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({
    maxLength: 64,
    description: 'next_cursor of the previous page: keyset paging, as fast 5,000 pages deep as on page 1; p is then ignored'
  }))
}

export const requestIdProp = {
  request_id: Type.Optional(Type.String({ maxLength: 64, description: 'exact match, empty = no filter' }))
}

// No maxLength here: the limit applies after trimming (the request line's own size bounds the raw value).
export const KeywordSchema = Type.String({
  description: 'trimmed, then 1..128 characters; matched literally and case-insensitively against content, or equal to type when an integer. ' +
    'A keyword without three letters or digits in a row (e.g. "ab", "超时") is searched by reading rows, within a time budget (see X-Search-Complete).'
})

export const PageSchema = <T extends typeof UserItemSchema | typeof AdminItemSchema>(item: T) => Type.Object({
  items: Type.Array(ref(item)),
  total: Type.Integer({ description: 'number of rows matching the filters (an estimate when total_exact is false)' }),
  total_exact: Type.Boolean({ description: 'false when total is the planner\'s estimate of a very large match set' }),
  page: Type.Integer(),
  page_size: Type.Integer(),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as cursor for the next page; null when this page is not full (a full last page still has one, and the page after it is empty)' })
})

// ---- the success responses, as named components (registered in app.ts) ----

export const UserLogPageResponseSchema = Envelope(PageSchema(UserItemSchema), { $id: 'UserLogPageResponse', description: 'A page of log rows with the user fields, and its total', examples: [pageExample(userItemExample)] })
export const AdminLogPageResponseSchema = Envelope(PageSchema(AdminItemSchema), { $id: 'AdminLogPageResponse', description: 'A page of log rows with every field, and its total', examples: [pageExample(adminItemExample)] })
export const UserLogListResponseSchema = Envelope(UserItemListSchema, { $id: 'UserLogListResponse', description: 'Log rows with the user fields, newest first', examples: [{ success: true, message: '', data: [userItemExample] }] })
export const AdminLogListResponseSchema = Envelope(AdminItemListSchema, { $id: 'AdminLogListResponse', description: 'Log rows with every field, newest first', examples: [{ success: true, message: '', data: [adminItemExample] }] })
export const DeletedCountResponseSchema = Envelope(Type.Integer({ description: 'rows deleted' }), { $id: 'DeletedCountResponse', description: 'The number of rows the purge deleted', examples: [deletedExample] })

/** Every named response; routes answer them through ref(). */
export const RESPONSE_SCHEMAS = [
  UserLogPageResponseSchema, AdminLogPageResponseSchema, UserLogListResponseSchema, AdminLogListResponseSchema,
  DeletedCountResponseSchema, StatResponseSchema
]
