import { Type, type Static } from '@sinclair/typebox'
import { envSchema } from 'env-schema'

/** A duration: digits and an optional unit (ms, s, m, h, d); bare digits are milliseconds. */
const DURATION_PATTERN = '^[0-9]+(ms|s|m|h|d)?$'
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** Milliseconds of a duration that matched DURATION_PATTERN (`90s`, `1h`, `500`). */
export function parseDuration (value: string): number {
  const m = /^([0-9]+)(ms|s|m|h|d)?$/.exec(value)
  if (m === null) throw new Error(`not a duration: '${value}'`)
  return Number(m[1]) * UNIT_MS[(m[2] ?? 'ms') as keyof typeof UNIT_MS]
}

export const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ minLength: 1, description: 'PostgreSQL URL; without it an embedded server is started' })),
  DATABASE_READ_URL: Type.Optional(Type.String({ minLength: 1, description: 'streaming replicas\' PostgreSQL URLs, comma-separated: lists, stats, searches, exports and API-key lookups read from one within READ_MAX_LAG_MS (round robin), else from DATABASE_URL; writes and the user check of auth always go to DATABASE_URL' })),
  READ_MAX_LAG_MS: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 5000, description: 'a replica further behind than this (its last replayed commit\'s age, 0 once it has replayed what the primary had written) serves no reads; 0 = only replicas that were caught up at the last check' }),
  READ_LAG_CHECK_INTERVAL_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 1000, description: 'how often each replica\'s lag and health are checked, each on a connection of its own' }),
  HOST: Type.String({ default: '127.0.0.1' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'the URL clients reach the service at (behind a proxy); the OpenAPI document\'s server. Default: http://HOST:PORT' })),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  WORKERS: Type.Integer({ minimum: 1, maximum: 256, default: 1, description: 'service processes sharing HOST:PORT (node:cluster), each with its own database pools; 1 = a single process, no cluster' }),
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
  PURGE_UNIT_MAX_ROWS: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 500_000, description: 'a whole day with at most this many rows is purged in one statement, else a run of whole hours holding at most this many; 0 = always row by row' }),
  SEARCH_SCAN_CHUNK_ROWS: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000, description: 'a search keyword without three letters or digits in a row reads rows newest first, this many per statement' }),
  SEARCH_SCAN_BUDGET_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 2000, description: 'how long such a search may go on reading chunks before it answers what it found, with X-Search-Complete: false; 0 = one chunk' }),
  EXPORT_MAX_ROWS: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 1_000_000, description: 'rows one export may write; a larger export answers 400 before the first byte' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
  DB_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10_000 }),
  DB_PREPARED_STATEMENTS: Type.Boolean({ default: true, description: 'run every query as a named prepared statement' }),
  DB_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5000, description: 'how long a request waits for a database connection, a new one or a free one from a full pool; past it, 503 LOG_DB_UNAVAILABLE' }),
  // User and key lookups are cached this long; the contract allows a few seconds before a
  // disabled user or key is refused, so the ceiling is 5 s.
  STAT_FOLD_INTERVAL_MS: Type.Integer({ minimum: 0, default: 1000, description: 'folding of stat deltas into the hourly rollups; 0 = off' }),
  INGEST_KEY: Type.Optional(Type.String({ minLength: 32, maxLength: 256, pattern: '^[\\x21-\\x7e]+$', description: 'a bearer key that may POST /api/log/ (ingestion only), for gateways that should not hold an admin token' })),
  INGEST_BODY_LIMIT: Type.Integer({ minimum: 1024, maximum: 1_073_741_824, default: 16_777_216, description: 'bytes of a JSON batch body (413 above it)' }),
  INGEST_LINE_LIMIT: Type.Integer({ minimum: 1024, maximum: 67_108_864, default: 1_048_576, description: 'bytes of one NDJSON line (400 naming the line above it)' }),
  INGEST_MAX_BYTES: Type.Integer({ minimum: 0, default: 0, description: 'bytes of one NDJSON backfill (413 above it, chunks before it stay written); 0 = no limit' }),
  INGEST_CHUNK_ROWS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000, description: 'rows per COPY transaction of an NDJSON backfill' }),
  AUTH_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 5000, default: 2000 }),
  AUTH_FAILURE_LIMIT: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 30, description: 'failed authentications (wrong access token or API key) one client IP may make per AUTH_FAILURE_WINDOW_MS before it is answered 429; 0 = no limit' }),
  AUTH_FAILURE_WINDOW_MS: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 60_000 }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'redis:// or rediss:// URL: failed-authentication counts and the token route\'s rate limit are shared through it by every instance; unset = each instance counts alone' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'log-service:', maxLength: 100, description: 'prefix of every Redis key the service writes (one per deployment sharing a Redis)' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 250, description: 'a Redis command unanswered this long counts as failed: the failed-authentication count falls back to the instance\'s own, the rate limit lets the request through' }),
  ROOT_ACCESS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 64, pattern: '^[\\x21-\\x7e]+$' })),
  NODE_ENV: Type.Optional(Type.String({ description: '`production` turns on the clear-text warning when neither TLS nor TRUST_PROXY is set; anything but `production` lets logs be pretty on a terminal' })),
  LOG_FORMAT: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], { default: 'auto', description: 'log lines as JSON, or pretty for people; auto = pretty only on a terminal outside production' }),
  LOG_PARTITIONS: Type.Union([Type.Literal('off'), Type.Literal('day'), Type.Literal('month')], { default: 'off', description: 'time partitions of logs (and of its per-user hourly rollup): day or month converts the plain table once at start-up (or `log-service migrate`), then partitions are created ahead and a purge drops whole ones; off = one table (a partitioned table stays partitioned)' }),
  LOG_RETENTION_DAYS: Type.Optional(Type.Integer({ minimum: 1, maximum: 36_500, description: 'keep this many days of history: older rows are purged within a minute of start-up and then every LOG_RETENTION_INTERVAL; unset = keep everything' })),
  LOG_RETENTION_INTERVAL: Type.String({ pattern: DURATION_PATTERN, default: '1h', description: 'how often retention runs: a number with ms, s, m, h or d (e.g. 30m); a bare number is milliseconds' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 256, pattern: '^[\\x21-\\x7e]+$', description: 'when set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`' })),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000, description: 'load shedding: 503 with Retry-After while the event loop lags more than this; 0 = off' }),
  // Off by default: a service at full CPU under a load test is busy, not in trouble; the delay is
  // what clients feel.
  PRESSURE_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'load shedding: 503 with Retry-After while the event loop is busier than this share of the time (e.g. 0.98); 0 = off' }),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate (chain) to serve HTTPS directly; needs TLS_KEY_FILE' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key for TLS_CERT_FILE' })),
  EMBEDDED_PG_DIR: Type.String({ default: '.data/postgres' }),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54320 })
})

export type Config = Static<typeof ConfigSchema>

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  // `FOO=` (as compose writes `${FOO:-}`) means unset, not an empty value that fails validation.
  const data = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''))
  // env: false, or env-schema would merge process.env under the environment it was given.
  const config = envSchema<Config>({ schema: ConfigSchema, data, env: false, dotenv: false })
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new Error('TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTPS, or neither')
  }
  if (parseDuration(config.LOG_RETENTION_INTERVAL) < 60_000) {
    throw new Error(`LOG_RETENTION_INTERVAL must be at least 1m, got '${config.LOG_RETENTION_INTERVAL}'`)
  }
  return config
}

/** Fastify's trustProxy from the TRUST_PROXY string. */
export function parseTrustProxy (value: string): boolean | number | string[] {
  const v = value.trim().toLowerCase()
  if (v === '' || v === 'false' || v === '0') return false
  if (v === 'true') return true
  if (/^[0-9]+$/.test(v)) return Number(v)
  return value.split(',').map((s) => s.trim()).filter(Boolean)
}
