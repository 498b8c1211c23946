import type pg from 'pg'
import { randomAlnum, Random } from './random.js'
import { channelName, groupList, tokenName } from './vocabulary.js'

export interface SeedUser {
  id: number
  username: string
  group: string
}

export interface SeedToken {
  id: number
  userId: number
  name: string
}

/** What log rows point at: read back from the database, so --append works on any existing data. */
export interface Dimensions {
  /** by id */
  users: SeedUser[]
  /** by id (so a user's tokens keep their creation order) */
  tokens: SeedToken[]
  channelIds: number[]
}

export interface DimensionOptions {
  users: number
  tokensPerUser: number
  channels: number
  groups: number
  seed: number
}

// PRNG stream for users and tokens, apart from the log rows' streams, so --rows never changes them.
const DIMENSION_STREAM = 0x5eed

/**
 * Inserts users (user<id>, random access token, a fixed group), their tokens and the channels.
 * Expects empty tables with fresh sequences (TRUNCATE … RESTART IDENTITY), so that user ids run
 * 1..users: the log generator's skew formula picks users by position.
 */
export async function insertDimensions (client: pg.ClientBase, opts: DimensionOptions): Promise<void> {
  const random = new Random(opts.seed, DIMENSION_STREAM)
  const groups = groupList(opts.groups)
  const totalWeight = groups.reduce((sum, g) => sum + g.weight, 0)

  const names: string[] = []
  const accessTokens: string[] = []
  const userGroups: string[] = []
  for (let id = 1; id <= opts.users; id++) {
    names.push(`user${id}`)
    accessTokens.push(randomAlnum(random, 32))
    userGroups.push(pickGroup(groups, totalWeight, random.next()))
  }
  await client.query(
    'insert into users (username, display_name, access_token, "group") select n, n, a, g from unnest($1::text[], $2::text[], $3::text[]) as t (n, a, g)',
    [names, accessTokens, userGroups]
  )

  const tokenUsers: number[] = []
  const keys: string[] = []
  const tokenNames: string[] = []
  for (let id = 1; id <= opts.users; id++) {
    for (let slot = 0; slot < opts.tokensPerUser; slot++) {
      tokenUsers.push(id)
      keys.push(randomAlnum(random, 48))
      tokenNames.push(tokenName(slot, id))
    }
  }
  await client.query(
    'insert into tokens (user_id, key, name) select * from unnest($1::int[], $2::text[], $3::text[])',
    [tokenUsers, keys, tokenNames]
  )

  const channels: string[] = []
  for (let n = 1; n <= opts.channels; n++) channels.push(channelName(n))
  await client.query('insert into channels (name) select * from unnest($1::text[])', [channels])

  // The tables were emptied, root included: an admin to sign in with (its token is in users).
  await client.query(
    'insert into users (username, display_name, role, access_token) values (\'root\', \'Root User\', 100, $1)',
    [randomAlnum(random, 32)]
  )
}

function pickGroup (groups: Array<{ name: string, weight: number }>, totalWeight: number, r: number): string {
  let acc = 0
  for (const g of groups) {
    acc += g.weight / totalWeight
    if (r < acc) return g.name
  }
  return groups.at(-1)?.name ?? 'default'
}

/**
 * Users, their live tokens and the channels, as the log generator needs them. Admins (the root
 * the seed adds among them) write no logs: the generator picks among the others.
 */
export async function loadDimensions (client: pg.ClientBase): Promise<Dimensions> {
  const users = await client.query<SeedUser>('select id, username, "group" from users where role < 10 order by id')
  const tokens = await client.query<SeedToken>('select id, user_id as "userId", name from tokens where deleted_at is null order by id')
  const channels = await client.query<{ id: number }>('select id from channels order by id')
  return { users: users.rows, tokens: tokens.rows, channelIds: channels.rows.map((c) => c.id) }
}
