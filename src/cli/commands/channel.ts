import type { Command } from 'commander'
import { listChannels, upsertChannel } from '../../queries/accounts.js'
import { databaseUrlOption, table, withDatabase, type CliIo } from '../context.js'
import { idArgument } from '../parse.js'

// log-service channel set|list: the names the admin lists show as channel_name.

export function registerChannelCommands (program: Command, io: CliIo): void {
  const channel = program.command('channel').description('name channels: set, list')

  channel.command('set')
    .description('create channel <id>, or rename it')
    .argument('<id>', 'channel id, as channel_id in the logs', idArgument)
    .argument('<name>', 'channel name')
    .addOption(databaseUrlOption())
    .addHelpText('after', "\nExample:\n  log-service channel set 3 'openai-east'")
    .action(async (id: number, name: string, opts: { databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        await upsertChannel(db, id, name)
        io.stdout.write(`channel ${id} is '${name}'\n`)
      })
    })

  channel.command('list')
    .description('list channels')
    .addOption(databaseUrlOption())
    .action(async (opts: { databaseUrl?: string }) => {
      await withDatabase(io, { url: opts.databaseUrl }, async ({ db }) => {
        const rows = await listChannels(db)
        io.stdout.write(table(['ID', 'NAME'], rows.map((c) => [String(c.id), c.name])))
      })
    })
}
