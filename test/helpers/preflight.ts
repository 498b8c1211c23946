import { tmpdir } from 'node:os'
import path from 'node:path'
import { embeddedBinaries, embeddedStartProblem } from '../../src/db/embedded-checks.js'
import { EmbeddedStartError, prepareForPostgresUser } from '../../src/db/embedded.js'
import { freePort } from '../../src/lib/child-process.js'

// `npm test` runs this before tap: when the tests' embedded PostgreSQL cannot start here, one
// sentence says why and what to do, instead of tap's report of a failed `before` script.
if (process.env.TEST_DATABASE_URL === undefined) {
  // setup.ts makes the tests' data folder in the temp folder, open to the postgres user.
  const dataDir = path.join(tmpdir(), 'log-service-test-preflight')
  let problem: string | undefined
  try {
    // As root, the binaries may need a copy the postgres user can reach: made here, once.
    prepareForPostgresUser({ dataDir })
  } catch (err) {
    if (!(err instanceof EmbeddedStartError)) throw err
    problem = err.message
  }
  problem ??= await embeddedStartProblem({
    dataDir,
    port: await freePort(),
    asRoot: process.getuid?.() === 0,
    ...await embeddedBinaries()
  })
  if (problem !== undefined) {
    process.stderr.write(`The tests' embedded PostgreSQL cannot start: ${problem.replace(/set DATABASE_URL\.$/, 'set TEST_DATABASE_URL to a PostgreSQL server\'s URL.')}\n`)
    process.exit(1)
  }
}
