import { Type, type Static } from '@sinclair/typebox'
import { envSchema } from 'env-schema'

export const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ minLength: 1, description: 'PostgreSQL URL; without it an embedded server is started' })),
  HOST: Type.String({ default: '127.0.0.1' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'the URL clients reach the service at (behind a proxy); the OpenAPI document\'s server. Default: http://HOST:PORT' })),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' }
  ),
  // 'true' trusts every hop, a number trusts that many hops, anything else is a comma-separated
  // list of addresses/CIDRs (e.g. 'loopback,10.0.0.0/8'); see Fastify's trustProxy option.
  TRUST_PROXY: Type.String({ default: 'false' }),
  TOKEN_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 60 }),
  TOKEN_RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  PURGE_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 100_000, default: 5000 }),
  PURGE_UNIT_MAX_ROWS: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 500_000, description: 'a whole day or hour with at most this many rows is purged in one statement; 0 = always row by row' }),
  EXPORT_MAX_ROWS: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 1_000_000, description: 'rows one export may write; a larger export answers 400 before the first byte' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
  DB_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  DB_PREPARED_STATEMENTS: Type.Boolean({ default: true, description: 'run every query as a named prepared statement' }),
  DB_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5000 }),
  // User and key lookups are cached this long; the contract allows a few seconds before a
  // disabled user or key is refused, so the ceiling is 5 s.
  STAT_FOLD_INTERVAL_MS: Type.Integer({ minimum: 0, default: 1000, description: 'folding of stat deltas into the hourly rollups; 0 = off' }),
  INGEST_KEY: Type.Optional(Type.String({ minLength: 32, maxLength: 256, pattern: '^[\\x21-\\x7e]+$', description: 'a bearer key that may POST /api/log/ (ingestion only), for gateways that should not hold an admin token' })),
  INGEST_BODY_LIMIT: Type.Integer({ minimum: 1024, maximum: 1_073_741_824, default: 16_777_216, description: 'bytes of a JSON batch body (413 above it)' }),
  INGEST_LINE_LIMIT: Type.Integer({ minimum: 1024, maximum: 67_108_864, default: 1_048_576, description: 'bytes of one NDJSON line (400 naming the line above it)' }),
  INGEST_MAX_BYTES: Type.Integer({ minimum: 0, default: 0, description: 'bytes of one NDJSON backfill (413 above it, chunks before it stay written); 0 = no limit' }),
  INGEST_CHUNK_ROWS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000, description: 'rows per COPY transaction of an NDJSON backfill' }),
  AUTH_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 2000 }),
  ROOT_ACCESS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 64, pattern: '^[\\x21-\\x7e]+$' })),
  EMBEDDED_PG_DIR: Type.String({ default: '.data/postgres' }),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54320 })
})

export type Config = Static<typeof ConfigSchema>

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  // `FOO=` (as compose writes `${FOO:-}`) means unset, not an empty value that fails validation.
  const data = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  // env: false, or env-schema would merge process.env under the environment it was given.
  return envSchema<Config>({ schema: ConfigSchema, data, env: false, dotenv: false })
}

/** Fastify's trustProxy from the TRUST_PROXY string. */
export function parseTrustProxy (value: string): boolean | number | string[] {
  const v = value.trim().toLowerCase()
  if (v === '' || v === 'false' || v === '0') return false
  if (v === 'true') return true
  if (/^[0-9]+$/.test(v)) return Number(v)
  return value.split(',').map((s) => s.trim()).filter(Boolean)
}
