import { randomBytes } from 'node:crypto'
import { Option, type Command } from 'commander'
import type { Kysely } from 'kysely'
import type { Database } from '../../db/types.js'
import { Role, UserStatus } from '../../domain.js'
import { findUser, insertUser, listUsers, setUserRole, setUserStatus, type UserRef } from '../../queries/accounts.js'
import { CliError, databaseUrlOption, isUniqueViolation, table, UsageError, withDatabase, type CliIo } from '../context.js'
import { parseRole, parseUserRef, roleLabel } from '../parse.js'

// log-service user create|list|disable|enable|set-role

const USER_ARG = 'user id, or username'

/** The user an argument names; an unknown one is a failure (exit 1) naming it. */
export async function resolveUser (db: Kysely<Database>, value: string): Promise<UserRef> {
  const found = await findUser(db, parseUserRef(value))
  if (found === undefined) throw new CliError(`no user '${value}'`)
  return found
}

/** A user argument checked before the database is touched: bad usage, not an unknown user. */
function userArgument (value: string): string {
  parseUserRef(value)
  return value
}

const statusName = (status: number) => status === UserStatus.enabled ? 'enabled' : status === UserStatus.disabled ? 'disabled' : String(status)

function checkNewUser (username: string, group: string): void {
  if (username.trim() !== username || username === '') throw new UsageError('the username must not be empty or start or end with spaces')
  // The CLI reads an all-digit argument as a user id.
  if (/^[0-9]+$/.test(username)) throw new UsageError(`username '${username}' has only digits: it would read as a user id`)
  if ([...username].length > 64) throw new UsageError('the username must be at most 64 characters')
  if (group === '' || group.length > 64) throw new UsageError('the group must be 1..64 characters')
}

interface CreateOptions { role: number, displayName?: string, group: string, databaseUrl?: string }

export function registerUserCommands (program: Command, io: CliIo): void {
  const user = program.command('user').description('manage users: create, list, disable, enable, set-role')

  user.command('create')
    .description('create a user; prints its id and its new access token (shown this once only)')
    .argument('<username>', 'unique login name (not all digits)')
    .addOption(new Option('--role <role>', 'user, admin or root (or 1, 10, 100)').argParser(parseRole).default(Role.user, 'user'))
    .option('--display-name <name>', 'name shown in the UI (default: the username)')
    .option('--group <group>', 'user group', 'default')
    .addOption(databaseUrlOption())
    .addHelpText('after', '\nExample:\n  log-service user create alice --role admin')
    .action(async (username: string, opts: CreateOptions) => {
      checkNewUser(username, opts.group)
      // 32 hex characters, as new-api's access tokens (a UUID without dashes).
      const accessToken = randomBytes(16).toString('hex')
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        let id: number
        try {
          id = await insertUser(db, { username, displayName: opts.displayName ?? username, role: opts.role, group: opts.group, accessToken })
        } catch (err) {
          if (isUniqueViolation(err)) throw new CliError(`username '${username}' is taken`)
          throw err
        }
        io.stdout.write(`created user ${id} '${username}', role ${roleLabel(opts.role)}\n`)
        io.stdout.write(`access token (shown this once only): ${accessToken}\n`)
        io.stdout.write(`call the API with the headers Authorization: Bearer <token> and New-Api-User: ${id}\n`)
      })
    })

  user.command('list')
    .description('list users (never their access tokens)')
    .addOption(databaseUrlOption())
    .action(async (opts: { databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        const rows = await listUsers(db)
        io.stdout.write(table(['ID', 'USERNAME', 'ROLE', 'STATUS', 'GROUP', 'TOKEN', 'DISPLAY NAME'], rows.map((u) => [
          String(u.id), u.username, roleLabel(u.role), statusName(u.status), u.group, u.has_token ? 'set' : 'none', u.display_name ?? ''
        ])))
      })
    })

  for (const [name, status] of [['disable', UserStatus.disabled], ['enable', UserStatus.enabled]] as const) {
    user.command(name)
      .description(name === 'disable'
        ? 'disable a user: its access token and its API keys stop working (within AUTH_CACHE_TTL_MS on a running service)'
        : 'enable a disabled user again')
      .argument('<user>', USER_ARG, userArgument)
      .addOption(databaseUrlOption())
      .action(async (value: string, opts: { databaseUrl?: string }) => {
        await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
          const found = await resolveUser(db, value)
          await setUserStatus(db, found.id, status)
          io.stdout.write(`${name}d user ${found.id} '${found.username}'\n`)
        })
      })
  }

  user.command('set-role')
    .description("change a user's role")
    .argument('<user>', USER_ARG, userArgument)
    .argument('<role>', 'user, admin or root (or 1, 10, 100)', parseRole)
    .addOption(databaseUrlOption())
    .addHelpText('after', '\nExample:\n  log-service user set-role alice root')
    .action(async (value: string, role: number, opts: { databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        const found = await resolveUser(db, value)
        await setUserRole(db, found.id, role)
        io.stdout.write(`user ${found.id} '${found.username}' now has role ${roleLabel(role)}\n`)
      })
    })
}
