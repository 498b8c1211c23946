import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Command } from 'commander'
import type { CliIo } from '../context.js'

// log-service openapi [--out FILE] (npm run openapi writes openapi.json).

/**
 * The OpenAPI document the route schemas produce, without a database: the pool connects lazily
 * and nothing here queries. Built from the default configuration, so the committed document does
 * not depend on who ran it (its server is the default listen address; a running service names
 * PUBLIC_URL).
 */
export async function openapiDocument (): Promise<string> {
  // Imported here: the whole app is more than every other command loads.
  const [{ buildApp }, { loadConfig }] = await Promise.all([import('../../app.js'), import('../../config.js')])
  const config = loadConfig({ LOG_LEVEL: 'silent', STAT_FOLD_INTERVAL_MS: '0' })
  const app = await buildApp({ ...config, DATABASE_URL: 'postgres://127.0.0.1:1/unused' })
  try {
    await app.ready()
    return JSON.stringify(app.swagger(), null, 2) + '\n'
  } finally {
    await app.close()
  }
}

export function registerOpenapiCommand (program: Command, io: CliIo): void {
  program.command('openapi')
    .description('print the OpenAPI document (JSON) that the route schemas produce; needs no database')
    .option('--out <file>', 'write it to this file instead of stdout')
    .addHelpText('after', '\nExample:\n  log-service openapi --out openapi.json')
    .action(async (opts: { out?: string }) => {
      const document = await openapiDocument()
      if (opts.out === undefined) {
        io.stdout.write(document)
        return
      }
      const out = path.resolve(opts.out)
      await writeFile(out, document)
      io.stdout.write(`wrote ${out}\n`)
    })
}
