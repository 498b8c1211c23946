import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { createDb, createPool } from '../../src/db/pool.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { convertToPartitions, ensurePartitions, type PartitionGrain } from '../../src/queries/partitions.js'
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
// TEST_LOG_PARTITIONS=day|month: the whole suite on the partitioned layout, with partitions from
// 2023 on (the tests' fixed timestamps are late 2023; older and far-future rows land in the default
// partition, as stragglers do).
const grain = process.env.TEST_LOG_PARTITIONS
if (grain !== undefined && grain !== '' && grain !== 'day' && grain !== 'month') throw new Error(`TEST_LOG_PARTITIONS must be day or month, got '${grain}'`)
try {
  await migrateToLatest(template)
  if (grain === 'day' || grain === 'month') {
    const now = Math.floor(Date.now() / 1000)
    await convertToPartitions(template, grain as PartitionGrain, { now })
    await ensurePartitions(template, grain as PartitionGrain, Date.UTC(2023, 0, 1) / 1000, now)
  }
} finally {
  // CREATE DATABASE … TEMPLATE fails while anyone is connected to the template.
  await template.destroy()
}
