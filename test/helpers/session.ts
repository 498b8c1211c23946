import pg from 'pg'
import { buildApp, type App } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { testConfig } from './app.js'

// Database trouble made on purpose: an app on a database the test controls, and a second session
// that changes the database under it for a while.

type Tap = { teardown: (fn: () => unknown) => void }

/** The real app on the database at `url` (which the test created, or which is not there at all). */
export async function buildAppOn (t: Tap, url: string, overrides: Partial<Config> = {}): Promise<App> {
  const app = await buildApp({ ...testConfig(overrides), DATABASE_URL: url })
  t.teardown(() => app.close())
  return app
}

/** What another session does (`apply`, in order) and how it puts it back (`undo`). */
export interface Change {
  apply: string[]
  undo: string
}

/** Another session locks the logs table: every read of it waits (until a statement timeout cancels it). */
export const lockLogs: Change = { apply: ['begin', 'lock table logs in access exclusive mode'], undo: 'rollback' }

/** Runs `fn` while another session on `url` holds `change`; undoes it afterwards, whatever `fn` did. */
export async function whileChanged (t: Tap, url: string, change: Change, fn: () => Promise<void>): Promise<void> {
  const session = new pg.Client({ connectionString: url })
  await session.connect()
  t.teardown(() => session.end())
  for (const statement of change.apply) await session.query(statement)
  try {
    await fn()
  } finally {
    await session.query(change.undo)
  }
}
