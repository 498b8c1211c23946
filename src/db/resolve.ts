import type { Config } from '../config.js'
import { startEmbeddedPostgres } from './embedded.js'

// "DATABASE_URL, or the embedded server": decided here once, for the service and the CLIs alike.

export interface ResolvedDatabase {
  url: string
  /** true when this process started the embedded server (and stop() stops it) */
  embedded: boolean
  stop: () => Promise<void>
}

/** The database a process works on: `url` (a CLI flag), DATABASE_URL, or the embedded server it starts. */
export async function resolveDatabase (
  config: Pick<Config, 'DATABASE_URL' | 'EMBEDDED_PG_DIR' | 'EMBEDDED_PG_PORT'>,
  opts: { url?: string, announce?: (line: string) => void } = {}
): Promise<ResolvedDatabase> {
  const url = opts.url ?? config.DATABASE_URL
  if (url !== undefined) return { url, embedded: false, stop: async () => {} }
  opts.announce?.(`DATABASE_URL not set: starting embedded PostgreSQL (data in ${config.EMBEDDED_PG_DIR}, port ${config.EMBEDDED_PG_PORT})`)
  const server = await startEmbeddedPostgres({ dataDir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT, database: 'logs', announce: opts.announce })
  return { url: server.url, embedded: true, stop: server.stop }
}
