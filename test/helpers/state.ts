import { readFileSync } from 'node:fs'
import path from 'node:path'

// How the tap `before` script tells the test files where PostgreSQL is (the port of a throwaway
// embedded server is only known once it runs).

// Keyed by the tap runner's pid (the parent of the before/after scripts and of every test file),
// so that two runs at once, on one machine or one server, keep out of each other's way.
const runId = process.ppid
export const stateFile = path.join(import.meta.dirname, '..', '..', '.tap', `test-db-${runId}.json`)
export const TEMPLATE_DB = `log_test_template_${runId}`

export interface TestDbState {
  /** a URL to the server's maintenance database, for CREATE/DROP DATABASE */
  adminUrl: string
  /** the detached process that owns an embedded server, when one was started */
  ownerPid?: number
  dataDir?: string
}

export function readState (): TestDbState {
  return JSON.parse(readFileSync(stateFile, 'utf8')) as TestDbState
}

/** The same server and credentials, another database. */
export function databaseUrl (adminUrl: string, database: string): string {
  const url = new URL(adminUrl)
  url.pathname = `/${database}`
  return url.toString()
}
