import { randomBytes } from 'node:crypto'
import type { Command } from 'commander'
import { TokenStatus } from '../../domain.js'
import { insertToken, listTokens, setTokenStatus } from '../../queries/accounts.js'
import { CliError, databaseUrlOption, isUniqueViolation, table, withDatabase, type CliIo } from '../context.js'
import { idArgument } from '../parse.js'
import { resolveUser } from './user.js'

// log-service token create|list|disable: a user's API keys (the `tokens` table).

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/**
 * A key as new-api makes them: 48 letters and digits (~285 bits), stored without the `sk-` that
 * clients put in front. Bytes at or above 248 are skipped, so that every character is equally likely.
 */
export function generateApiKey (length = 48): string {
  let key = ''
  while (key.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && key.length < length) key += ALPHANUMERIC[byte % 62]
    }
  }
  return key
}

function statusName (status: number, deletedAt: Date | null): string {
  if (deletedAt !== null) return 'deleted'
  return Object.entries(TokenStatus).find(([, n]) => n === status)?.[0] ?? String(status)
}

export function registerTokenCommands (program: Command, io: CliIo): void {
  const token = program.command('token').description("manage users' API keys: create, list, disable")

  token.command('create')
    .description('create an API key for a user; prints its id and the key (shown this once only)')
    .argument('<user>', 'user id, or username')
    .option('--name <name>', 'key name, as token_name in the logs', 'default')
    .addOption(databaseUrlOption())
    .addHelpText('after', '\nExample:\n  log-service token create alice --name ci')
    .action(async (value: string, opts: { name: string, databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        const user = await resolveUser(db, value)
        const key = generateApiKey()
        let id: number
        try {
          id = await insertToken(db, { userId: user.id, key, name: opts.name })
        } catch (err) {
          if (isUniqueViolation(err)) throw new CliError('the generated key exists already; run the command again')
          throw err
        }
        io.stdout.write(`created API key ${id} '${opts.name}' for user ${user.id} '${user.username}'\n`)
        io.stdout.write(`key (shown this once only): sk-${key}\n`)
      })
    })

  token.command('list')
    .description('list API keys with their owner and status (never the keys, only their first characters)')
    .option('--user <user>', "only this user's keys (id, or username)")
    .option('--all', 'include deleted keys')
    .addOption(databaseUrlOption())
    .action(async (opts: { user?: string, all?: boolean, databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        const userId = opts.user === undefined ? undefined : (await resolveUser(db, opts.user)).id
        const rows = await listTokens(db, { userId, includeDeleted: opts.all === true })
        io.stdout.write(table(['ID', 'USER', 'NAME', 'STATUS', 'KEY'], rows.map((r) => [
          String(r.id), `${r.user_id} ${r.username ?? '(no such user)'}`, r.name, statusName(r.status, r.deleted_at), `sk-${r.key_prefix}…`
        ])))
      })
    })

  token.command('disable')
    .description('disable an API key: it can no longer read its logs (within AUTH_CACHE_TTL_MS on a running service)')
    .argument('<id>', 'key id (see token list)', idArgument)
    .addOption(databaseUrlOption())
    .action(async (id: number, opts: { databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        if (!await setTokenStatus(db, id, TokenStatus.disabled)) throw new CliError(`no API key with id ${id} (or it is deleted)`)
        io.stdout.write(`disabled API key ${id}\n`)
      })
    })
}
