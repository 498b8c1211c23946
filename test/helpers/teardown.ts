import { existsSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { readState, stateFile, TEMPLATE_DB } from './state.js'

// tap `after`: drop the template and stop the embedded server, waiting until its data is gone
// (the owner's pid says nothing about whether PostgreSQL itself has exited).
if (existsSync(stateFile)) {
  const state = readState()
  const admin = new pg.Client({ connectionString: state.adminUrl })
  try {
    await admin.connect()
    await admin.query(`drop database if exists ${TEMPLATE_DB} with (force)`)
  } catch {
    // the server may already be gone; nothing left to drop then
  } finally {
    await admin.end().catch(() => {})
  }

  if (state.ownerPid !== undefined && state.dataDir !== undefined) {
    try { process.kill(state.ownerPid, 'SIGTERM') } catch {}
    const data = `${state.dataDir}/data`
    for (let waited = 0; existsSync(data) && waited < 30_000; waited += 100) await sleep(100)
    rmSync(state.dataDir, { recursive: true, force: true })
  }
  rmSync(stateFile, { force: true })
}
