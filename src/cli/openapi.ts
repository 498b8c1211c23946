import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { buildApp } from '../app.js'
import { loadConfig } from '../config.js'

// npm run openapi: writes the OpenAPI document the route schemas produce to openapi.json (or the
// path given), without a database: the pool connects lazily and nothing here queries. Built from
// the default configuration, so the committed document does not depend on who ran it (its server
// is the default listen address; a running service names PUBLIC_URL).
const out = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', '..', 'openapi.json'))
const config = loadConfig({ LOG_LEVEL: 'silent', STAT_FOLD_INTERVAL_MS: '0' })
const app = await buildApp({ ...config, DATABASE_URL: 'postgres://127.0.0.1:1/unused' })
await app.ready()
writeFileSync(out, JSON.stringify(app.swagger(), null, 2) + '\n')
await app.close()
process.stdout.write(`wrote ${out}\n`)
