import { tmpdir } from 'node:os'
import path from 'node:path'
import { embeddedBinaries, embeddedStartProblem } from '../../src/db/embedded-checks.js'
import { freePort } from '../../src/lib/child-process.js'

// `npm test` runs this before tap: when the tests' embedded PostgreSQL cannot start here, one
// sentence says why and what to do, instead of tap's report of a failed `before` script.
if (process.env.TEST_DATABASE_URL === undefined) {
  const problem = await embeddedStartProblem({
    // setup.ts makes the tests' data folder in the temp folder, open to the postgres user.
    dataDir: path.join(tmpdir(), 'log-service-test-preflight'),
    port: await freePort(),
    asRoot: process.getuid?.() === 0,
    ...await embeddedBinaries()
  })
  if (problem !== undefined) {
    process.stderr.write(`The tests' embedded PostgreSQL cannot start: ${problem.replace(/set DATABASE_URL\.$/, 'set TEST_DATABASE_URL to a PostgreSQL server\'s URL.')}\n`)
    process.exit(1)
  }
}
