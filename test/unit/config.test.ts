import t from 'tap'
import { ConfigSchema, loadConfig, parseDuration, parseTrustProxy } from '../../src/config.js'

// Every variable the schema knows, so that a test can run without whatever the shell exported.
const CONFIG_VARS = Object.keys(ConfigSchema.properties)

function clearConfigEnv (t: { teardown: (fn: () => unknown) => void }) {
  const saved = new Map<string, string>()
  for (const name of CONFIG_VARS) {
    const value = process.env[name]
    if (value !== undefined) saved.set(name, value)
    delete process.env[name]
  }
  t.teardown(() => {
    for (const name of CONFIG_VARS) delete process.env[name]
    for (const [name, value] of saved) process.env[name] = value
  })
}

t.test('loadConfig', async (t) => {
  t.test('applies the documented defaults', async (t) => {
    clearConfigEnv(t)
    t.strictSame(loadConfig({}), {
      HOST: '127.0.0.1',
      PORT: 3000,
      WORKERS: 1,
      LOG_LEVEL: 'info',
      TRUST_PROXY: 'false',
      TOKEN_RATE_LIMIT_MAX: 60,
      TOKEN_RATE_LIMIT_WINDOW_MS: 60_000,
      PURGE_BATCH_SIZE: 5000,
      PURGE_UNIT_MAX_ROWS: 500_000,
      SEARCH_SCAN_CHUNK_ROWS: 100_000,
      SEARCH_SCAN_BUDGET_MS: 2000,
      EXPORT_MAX_ROWS: 1_000_000,
      DB_POOL_MAX: 10,
      DB_STATEMENT_TIMEOUT_MS: 10_000,
      DB_CONNECT_TIMEOUT_MS: 5000,
      DB_PREPARED_STATEMENTS: true,
      READ_MAX_LAG_MS: 5000,
      READ_LAG_CHECK_INTERVAL_MS: 1000,
      STAT_FOLD_INTERVAL_MS: 1000,
      INGEST_BODY_LIMIT: 16_777_216,
      INGEST_LINE_LIMIT: 1_048_576,
      INGEST_MAX_BYTES: 0,
      INGEST_CHUNK_ROWS: 10_000,
      AUTH_CACHE_TTL_MS: 2000,
      AUTH_FAILURE_LIMIT: 30,
      AUTH_FAILURE_WINDOW_MS: 60_000,
      REDIS_KEY_PREFIX: 'log-service:',
      REDIS_COMMAND_TIMEOUT_MS: 250,
      LOG_FORMAT: 'auto',
      LOG_RETENTION_INTERVAL: '1h',
      LOG_PARTITIONS: 'off',
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 1000,
      PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0,
      EMBEDDED_PG_DIR: '.data/postgres',
      EMBEDDED_PG_PORT: 54320
    })
  })

  t.test('retention: off by default, a number of days, an interval of at least a minute', async (t) => {
    clearConfigEnv(t)
    t.equal(loadConfig({}).LOG_RETENTION_DAYS, undefined)
    t.equal(loadConfig({ LOG_RETENTION_DAYS: '30' }).LOG_RETENTION_DAYS, 30)
    t.throws(() => loadConfig({ LOG_RETENTION_DAYS: '0' }), /LOG_RETENTION_DAYS must be >= 1/)
    t.throws(() => loadConfig({ LOG_RETENTION_DAYS: 'month' }), /LOG_RETENTION_DAYS must be integer/)
    t.equal(loadConfig({ LOG_RETENTION_INTERVAL: '30m' }).LOG_RETENTION_INTERVAL, '30m')
    t.throws(() => loadConfig({ LOG_RETENTION_INTERVAL: 'hourly' }), /LOG_RETENTION_INTERVAL must match pattern/)
    t.throws(() => loadConfig({ LOG_RETENTION_INTERVAL: '30s' }), /LOG_RETENTION_INTERVAL must be at least 1m, got '30s'/)
  })

  t.test('TLS needs both files or neither', async (t) => {
    clearConfigEnv(t)
    t.throws(() => loadConfig({ TLS_CERT_FILE: '/etc/cert.pem' }), /TLS_CERT_FILE and TLS_KEY_FILE go together/)
    t.throws(() => loadConfig({ TLS_KEY_FILE: '/etc/key.pem' }), /TLS_CERT_FILE and TLS_KEY_FILE go together/)
    t.match(loadConfig({ TLS_CERT_FILE: '/etc/cert.pem', TLS_KEY_FILE: '/etc/key.pem' }), { TLS_CERT_FILE: '/etc/cert.pem', TLS_KEY_FILE: '/etc/key.pem' })
  })

  t.test('coerces the strings of the environment to numbers', async (t) => {
    clearConfigEnv(t)
    const config = loadConfig({
      PORT: '8080',
      DB_POOL_MAX: '25',
      AUTH_CACHE_TTL_MS: '0',
      TOKEN_RATE_LIMIT_MAX: '3',
      LOG_LEVEL: 'warn',
      DATABASE_URL: 'postgres://u:p@db:5432/logs'
    })
    t.equal(config.PORT, 8080)
    t.equal(config.DB_POOL_MAX, 25)
    t.equal(config.AUTH_CACHE_TTL_MS, 0)
    t.equal(config.TOKEN_RATE_LIMIT_MAX, 3)
    t.equal(config.LOG_LEVEL, 'warn')
    t.equal(config.DATABASE_URL, 'postgres://u:p@db:5432/logs')
  })

  t.test('drops variables it does not know', async (t) => {
    clearConfigEnv(t)
    const config = loadConfig({ SOMETHING_ELSE: 'x' }) as Record<string, unknown>
    t.notOk('SOMETHING_ELSE' in config)
  })

  t.test('reads only the environment it is given', async (t) => {
    // loadConfig(env) is what tests and tools call with an explicit environment: a variable the
    // shell happens to export must not leak into that configuration.
    clearConfigEnv(t)
    process.env.PORT = '4321'
    process.env.TOKEN_RATE_LIMIT_MAX = '2'
    const config = loadConfig({})
    t.equal(config.PORT, 3000, 'PORT from process.env ignored')
    t.equal(config.TOKEN_RATE_LIMIT_MAX, 60, 'TOKEN_RATE_LIMIT_MAX from process.env ignored')
  })

  t.test('rejects bad values with a message naming the variable', async (t) => {
    clearConfigEnv(t)
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'abc' }, /PORT/],
      [{ PORT: '70000' }, /PORT/],
      [{ PORT: '1.5' }, /PORT/],
      [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
      [{ DB_POOL_MAX: '0' }, /DB_POOL_MAX/],
      [{ DB_POOL_MAX: '1001' }, /DB_POOL_MAX/],
      [{ TOKEN_RATE_LIMIT_MAX: '0' }, /TOKEN_RATE_LIMIT_MAX/],
      [{ PURGE_BATCH_SIZE: '0' }, /PURGE_BATCH_SIZE/],
      [{ DB_STATEMENT_TIMEOUT_MS: '10' }, /DB_STATEMENT_TIMEOUT_MS/],
      [{ ROOT_ACCESS_TOKEN: 'short' }, /ROOT_ACCESS_TOKEN/]
    ]
    for (const [env, message] of cases) {
      t.throws(() => loadConfig(env), { message }, JSON.stringify(env))
    }
  })

  t.test('keeps AUTH_CACHE_TTL_MS within the few seconds the contract allows', async (t) => {
    clearConfigEnv(t)
    t.equal(loadConfig({ AUTH_CACHE_TTL_MS: '5000' }).AUTH_CACHE_TTL_MS, 5000)
    t.throws(() => loadConfig({ AUTH_CACHE_TTL_MS: '5001' }), { message: /AUTH_CACHE_TTL_MS/ })
    t.throws(() => loadConfig({ AUTH_CACHE_TTL_MS: '60000' }), { message: /AUTH_CACHE_TTL_MS/ })
    t.throws(() => loadConfig({ AUTH_CACHE_TTL_MS: '-1' }), { message: /AUTH_CACHE_TTL_MS/ })
  })

  t.test('lists every bad variable at once', async (t) => {
    clearConfigEnv(t)
    t.throws(() => loadConfig({ PORT: 'abc', DB_POOL_MAX: '0' }), { message: /PORT[\s\S]*DB_POOL_MAX|DB_POOL_MAX[\s\S]*PORT/ })
  })
})

t.test('parseTrustProxy', async (t) => {
  t.test('off', async (t) => {
    for (const value of ['', 'false', 'FALSE', ' false ', '0']) {
      t.equal(parseTrustProxy(value), false, JSON.stringify(value))
    }
  })

  t.test('every hop', async (t) => {
    for (const value of ['true', 'TRUE', ' True ']) {
      t.equal(parseTrustProxy(value), true, JSON.stringify(value))
    }
  })

  t.test('a hop count', async (t) => {
    t.equal(parseTrustProxy('1'), 1)
    t.equal(parseTrustProxy('2'), 2)
    t.equal(parseTrustProxy(' 3 '), 3)
  })

  t.test('a list of addresses and CIDRs', async (t) => {
    t.strictSame(parseTrustProxy('127.0.0.1'), ['127.0.0.1'])
    t.strictSame(parseTrustProxy('loopback, 10.0.0.0/8'), ['loopback', '10.0.0.0/8'])
    t.strictSame(parseTrustProxy('loopback,,10.0.0.1,'), ['loopback', '10.0.0.1'])
    t.strictSame(parseTrustProxy('::1, fd00::/8'), ['::1', 'fd00::/8'])
  })
})

t.test('parseDuration', async (t) => {
  t.equal(parseDuration('500'), 500, 'bare digits are milliseconds')
  t.equal(parseDuration('250ms'), 250)
  t.equal(parseDuration('90s'), 90_000)
  t.equal(parseDuration('30m'), 1_800_000)
  t.equal(parseDuration('1h'), 3_600_000)
  t.equal(parseDuration('2d'), 172_800_000)
  t.throws(() => parseDuration('1.5h'), /not a duration: '1.5h'/)
  t.throws(() => parseDuration('-1h'), /not a duration/)
})
