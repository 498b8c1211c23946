import { Type } from '@sinclair/typebox'
import { Envelope } from './common.js'
import { statExample } from './examples.js'

export const StatSchema = Type.Object({
  quota: Type.Integer({ description: 'sum of quota over rows matching every filter, created_at in [start, end]' }),
  rpm: Type.Integer({ description: 'rows matching the filters other than the window, created_at in the last 60 seconds' }),
  tpm: Type.Integer({ description: 'sum of prompt_tokens + completion_tokens over those rows' })
})

export const StatResponseSchema = Envelope(StatSchema, { $id: 'LogStatResponse', description: 'Quota over the window; rows and tokens over the last 60 seconds', examples: [statExample] })
