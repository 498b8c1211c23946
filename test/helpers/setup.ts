import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { createDb, createPool } from '../../src/db/pool.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { freePort, spawnTsx } from '../../src/lib/child-process.js'
import { databaseUrl, stateFile, TEMPLATE_DB, type TestDbState } from './state.js'

// tap `before`: find or start PostgreSQL, then migrate a template database once; every test file
// clones its own database from it (CREATE DATABASE … TEMPLATE, a file copy).

async function startEmbedded (): Promise<TestDbState> {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-test-'))
  // As root, PostgreSQL runs as the postgres user, which must reach the data directory inside.
  chmodSync(dir, 0o755)
  const dataDir = path.join(dir, 'data')
  const readyFile = path.join(dir, 'ready')
  const port = await freePort()
  const log = openSync(path.join(dir, 'owner.log'), 'a')
  const owner = spawnTsx(path.join(import.meta.dirname, 'embedded-owner.ts'), [dataDir, String(port), readyFile], {
    detached: true,
    stdio: ['ignore', log, log]
  })
  owner.unref()
  for (let waited = 0; !existsSync(readyFile); waited += 100) {
    if (owner.exitCode !== null || waited > 120_000) {
      throw new Error(`embedded PostgreSQL for the tests did not start; see ${path.join(dir, 'owner.log')}`)
    }
    await sleep(100)
  }
  return { adminUrl: readFileSync(readyFile, 'utf8'), ownerPid: owner.pid, dataDir: dir }
}

const state: TestDbState = process.env.TEST_DATABASE_URL
  ? { adminUrl: process.env.TEST_DATABASE_URL }
  : await startEmbedded()
mkdirSync(path.dirname(stateFile), { recursive: true })
writeFileSync(stateFile, JSON.stringify(state))

const admin = new pg.Client({ connectionString: state.adminUrl })
await admin.connect()
try {
  await admin.query(`drop database if exists ${TEMPLATE_DB} with (force)`)
  await admin.query(`create database ${TEMPLATE_DB}`)
} finally {
  await admin.end()
}

const template = createDb(createPool({ connectionString: databaseUrl(state.adminUrl, TEMPLATE_DB), max: 1 }))
try {
  await migrateToLatest(template)
} finally {
  // CREATE DATABASE … TEMPLATE fails while anyone is connected to the template.
  await template.destroy()
}
