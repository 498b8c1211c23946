import { deepStrictEqual, equal, ok } from 'node:assert/strict'
import fc from 'fast-check'
import type { LightMyRequestResponse } from 'fastify'
import type { App } from '../../src/app.js'
import { createApiKey, createUser, insertLogs, type TestUser } from './app.js'
import { ADMIN_FIELDS, USER_FIELDS } from './fields.js'

// The property tests' world (test/properties/): random users, keys and log rows drawn from one
// seed, the requests fast-check draws against them, and a model of the contract
// (shared/spec/log-api.md) that says, in plain JS over the rows as inserted, what each request
// must answer. A mismatch throws (node:assert), so that fast-check shrinks it and reports its seed.

/** Seed and run count of a file: FC_SEED replays a failure (data and requests), FC_RUNS sets the runs of every property. */
export function propertySettings (): { seed: number, runs: (defaultRuns: number) => number } {
  const seed = process.env.FC_SEED === undefined || process.env.FC_SEED === '' ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(process.env.FC_SEED)
  if (!Number.isSafeInteger(seed)) throw new Error(`FC_SEED must be an integer, got ${process.env.FC_SEED}`)
  const forced = process.env.FC_RUNS === undefined || process.env.FC_RUNS === '' ? undefined : Number(process.env.FC_RUNS)
  if (forced !== undefined && !(Number.isSafeInteger(forced) && forced > 0)) throw new Error(`FC_RUNS must be a positive integer, got ${process.env.FC_RUNS}`)
  return { seed, runs: (defaultRuns) => forced ?? defaultRuns }
}

/**
 * fc.assert with the file's seed; its report (seed, path, counterexample, the assertion's diff)
 * becomes the tap test's failure, headed by the line that replays it.
 */
export async function assertProperty<T> (property: fc.IAsyncPropertyWithHooks<T>, run: { fileSeed: number, seed: number, numRuns: number }): Promise<void> {
  try {
    await fc.assert(property, { seed: run.seed, numRuns: run.numRuns })
  } catch (err) {
    // fast-check 4 keeps the property's own error (the assertion and its diff) as the cause.
    const cause = err instanceof Error && err.cause instanceof Error ? `\n${err.cause.message}` : ''
    const report = err instanceof Error ? err.message : String(err)
    throw new Error(`FC_SEED=${run.fileSeed} replays the data and the requests of this failure\n${report}${cause}`)
  }
}

// ---- the data ----

export const T0 = 1_700_000_000
/** A user_id that no users row has: a gateway may write such rows; only admins see them. */
export const ORPHAN_USER_ID = 999_999
/** A channel id that no channels row has: its channel_name is ''. */
export const UNKNOWN_CHANNEL = 999

const USERNAMES = ['alice', 'Alice', 'bob', 'carol', '张三', 'dave_x', 'e%ve']
const KEY_NAMES = ['default', 'k1', 'K1', '写作', 'tok%', 'tok_']
const MODELS = ['gpt-4', 'gpt-4o', 'GPT-4', 'claude-3', '']
const GROUPS = ['default', 'vip', 'svip', '']
const REQUEST_IDS = ['', 'req-1', 'REQ-1', 'req-2', 'r%', 'r_1']
const CHANNEL_NAMES = ['chan-a', '渠道二', '']
/** Pieces of content: the search keywords are drawn from them (and from their parts, in any case). */
export const FRAGMENTS = [
  'Timeout', 'TIMEOUT', 'timeout', 'quota exceeded', '超时', '请求失败', '额度不足', '模型 gpt-4', '100%', '50% off',
  'a_b', 'axb', 'a\\b', 'C:\\path\\x', 'under_score', 'MiXeD CaSe', 'ok', '%_\\', 'error 2', 'type 5'
]

interface RowSpec {
  owner: number
  key: number | null
  keyName: string | null
  /** seconds after T0, or seconds from the moment of insertion (rpm and tpm count the last 60) */
  time: { base: number } | { recent: number }
  type: number
  content: string
  who: 'owner' | 'other' | 'old'
  model_name: string
  group: string
  request_id: string
  quota: number
  prompt_tokens: number
  completion_tokens: number
  use_time: number
  is_stream: boolean
  /** index into the channels, -1 for none (0), -2 for one that does not exist */
  channel: number
  ip: string
  other: string
}

export interface Dataset {
  usernames: string[]
  statuses: number[]
  disabledAdmin: boolean
  keys: Array<{ owner: number, name: string, status: number, deleted: boolean }>
  rows: RowSpec[]
}

const rowArb: fc.Arbitrary<RowSpec> = fc.record({
  owner: fc.nat(),
  // Most rows through one of the owner's keys; now and then under a name no key of theirs has.
  key: fc.option(fc.nat(), { freq: 4 }),
  keyName: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...KEY_NAMES) }),
  time: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 400 }).map((base) => ({ base })) },
    { weight: 1, arbitrary: fc.integer({ min: -150, max: 150 }).map((recent) => ({ recent })) }
  ),
  type: fc.integer({ min: 1, max: 5 }),
  content: fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 4 }).map((parts) => parts.join(' ')),
  who: fc.constantFrom<RowSpec['who']>('owner', 'owner', 'owner', 'owner', 'other', 'old'),
  model_name: fc.constantFrom(...MODELS),
  group: fc.constantFrom(...GROUPS),
  request_id: fc.constantFrom(...REQUEST_IDS),
  quota: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 100_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 2 ** 32, max: 2 ** 33 }) }),
  prompt_tokens: fc.integer({ min: 0, max: 100_000 }),
  completion_tokens: fc.integer({ min: 0, max: 100_000 }),
  use_time: fc.integer({ min: 0, max: 120 }),
  is_stream: fc.boolean(),
  channel: fc.integer({ min: -2, max: CHANNEL_NAMES.length - 1 }),
  ip: fc.constantFrom('', '10.0.0.1', '2001:db8::1'),
  other: fc.constantFrom('', '{}', '{"admin_info":{"x":1}}')
})

const datasetArb: fc.Arbitrary<Dataset> = fc.record({
  usernames: fc.shuffledSubarray(USERNAMES, { minLength: 3, maxLength: 5 }),
  statuses: fc.array(fc.constantFrom(1, 2), { minLength: USERNAMES.length, maxLength: USERNAMES.length }),
  disabledAdmin: fc.boolean(),
  keys: fc.array(fc.record({
    owner: fc.nat(),
    name: fc.constantFrom(...KEY_NAMES),
    status: fc.constantFrom(1, 1, 1, 2, 3, 4),
    deleted: fc.integer({ min: 0, max: 4 }).map((n) => n === 0)
  }), { minLength: 4, maxLength: 12 }),
  rows: fc.integer({ min: 200, max: 400 }).chain((n) => fc.array(rowArb, { minLength: n, maxLength: n }))
})

/** The file's data, the same for the same seed. */
export function datasetFor (seed: number): Dataset {
  const [dataset] = fc.sample(datasetArb, { seed, numRuns: 1 })
  if (dataset === undefined) throw new Error('fast-check drew no dataset')
  return dataset
}

export interface WorldUser extends TestUser {
  role: number
  status: number
}

export interface WorldKey {
  id: number
  key: string
  owner: number
  /** not deleted, not disabled, owner enabled: the key may read its logs */
  usable: boolean
}

/** A log row as stored, with its channel's name. */
export interface Row {
  id: number
  user_id: number
  created_at: number
  type: number
  content: string
  username: string
  token_name: string
  model_name: string
  quota: number
  prompt_tokens: number
  completion_tokens: number
  use_time: number
  is_stream: boolean
  channel_id: number
  channel_name: string
  token_id: number
  group: string
  ip: string
  request_id: string
  other: string
}

export interface World {
  app: App
  /** users[0] is an enabled admin (role 10); then 3 to 5 users (role 1), the first two enabled, the last disabled; maybe a disabled admin */
  users: WorldUser[]
  keys: WorldKey[]
  rows: Row[]
}

/** Inserts the dataset: users, keys, channels and log rows, the "recent" rows stamped from `now`. */
export async function buildWorld (app: App, data: Dataset, now: number): Promise<World> {
  const specs = [
    { username: 'admin', role: 10, status: 1 },
    // The first two users enabled (to see each other's rows withheld), the last one disabled.
    ...data.usernames.map((username, i) => ({ username, role: 1, status: i < 2 ? 1 : i === data.usernames.length - 1 ? 2 : data.statuses[i]! })),
    ...(data.disabledAdmin ? [{ username: 'admin_off', role: 10, status: 2 }] : [])
  ]
  const users: WorldUser[] = []
  for (const spec of specs) users.push({ ...await createUser(app.db, spec), role: spec.role, status: spec.status })

  const keys: WorldKey[] = []
  for (const [i, spec] of data.keys.entries()) {
    // The first key is always one that reads its logs (an enabled user's, live), so the token route answers 200 sometimes.
    const k = i === 0 ? { ...spec, owner: 1, status: spec.status === 2 ? 1 : spec.status, deleted: false } : spec
    const owner = k.owner % users.length
    const created = await createApiKey(app.db, users[owner]!.id, { name: k.name, status: k.status, deleted: k.deleted })
    keys.push({ ...created, owner, usable: !k.deleted && k.status !== 2 && users[owner]!.status === 1 })
  }
  const keyNames = new Map(data.keys.map((k, i) => [keys[i]!.id, k.name]))

  const channels = await app.db.insertInto('channels').values(CHANNEL_NAMES.map((name) => ({ name }))).returning(['id', 'name']).execute()

  const rows = data.rows.map((r) => {
    const ownerIndex = r.owner % (users.length + 1)
    const owner = users[ownerIndex]
    const ownKeys = keys.filter((k) => k.owner === ownerIndex)
    const key = r.key === null || ownKeys.length === 0 ? undefined : ownKeys[r.key % ownKeys.length]
    const ownerName = owner?.username ?? 'gone'
    const channel = r.channel >= 0 ? channels[r.channel]! : { id: r.channel === -1 ? 0 : UNKNOWN_CHANNEL, name: '' }
    return {
      user_id: owner?.id ?? ORPHAN_USER_ID,
      created_at: 'base' in r.time ? T0 + r.time.base : now + r.time.recent,
      type: r.type,
      content: r.content,
      // Rows carry the name their user had when they were written, or (a gateway's doing) another's.
      username: r.who === 'owner' ? ownerName : r.who === 'old' ? `old_${ownerName}` : users[(ownerIndex + 1) % users.length]!.username,
      token_name: r.keyName ?? (key === undefined ? '' : keyNames.get(key.id)!),
      model_name: r.model_name,
      quota: r.quota,
      prompt_tokens: r.prompt_tokens,
      completion_tokens: r.completion_tokens,
      use_time: r.use_time,
      is_stream: r.is_stream,
      channel_id: channel.id,
      token_id: key?.id ?? 0,
      group: r.group,
      ip: r.ip,
      request_id: r.request_id,
      other: r.other,
      channel_name: channel.name
    }
  })
  const ids = await insertLogs(app.db, rows.map(({ channel_name: _, ...row }) => row))
  return { app, users, keys, rows: rows.map((row, i) => ({ id: ids[i]!, ...row })) }
}

// ---- the model ----

export const newestFirst = (a: { created_at: number, id: number }, b: { created_at: number, id: number }) => b.created_at - a.created_at || b.id - a.id

export interface ModelFilter {
  userId?: number
  tokenId?: number
  /** undefined or 0: every type */
  type?: number
  start?: number
  end?: number
  token_name?: string
  model_name?: string
  group?: string
  request_id?: string
  username?: string
  /** undefined or 0: every channel */
  channel?: number
}

export function matches (row: Row, f: ModelFilter): boolean {
  return (f.userId === undefined || row.user_id === f.userId) &&
    (f.tokenId === undefined || row.token_id === f.tokenId) &&
    (!f.type || row.type === f.type) &&
    (f.start === undefined || row.created_at >= f.start) &&
    (f.end === undefined || row.created_at <= f.end) &&
    (f.token_name === undefined || row.token_name === f.token_name) &&
    (f.model_name === undefined || row.model_name === f.model_name) &&
    (f.group === undefined || row.group === f.group) &&
    (f.request_id === undefined || row.request_id === f.request_id) &&
    (f.username === undefined || row.username === f.username) &&
    (!f.channel || row.channel_id === f.channel)
}

/** The rows a filter leaves, newest first. */
export function select (world: World, f: ModelFilter): Row[] {
  return world.rows.filter((r) => matches(r, f)).sort(newestFirst)
}

export function userItem (r: Row) {
  return {
    id: r.id,
    user_id: r.user_id,
    created_at: r.created_at,
    type: r.type,
    content: r.content,
    token_name: r.token_name,
    model_name: r.model_name,
    quota: r.quota,
    prompt_tokens: r.prompt_tokens,
    completion_tokens: r.completion_tokens,
    use_time: r.use_time,
    is_stream: r.is_stream,
    group: r.group,
    request_id: r.request_id
  }
}

export function adminItem (r: Row) {
  return { ...userItem(r), username: r.username, channel_id: r.channel_id, channel_name: r.channel_name, token_id: r.token_id, ip: r.ip, other: r.other }
}

/** The contract's keyword match: content contains it, literally and ignoring case, or it is an integer equal to the type. */
export function keywordMatches (row: Row, keyword: string): boolean {
  return row.content.toLowerCase().includes(keyword.toLowerCase()) || (/^[0-9]+$/.test(keyword) && Number(keyword) === row.type)
}

// ---- routes, callers and queries ----

export const ROUTES = {
  self: '/api/log/self',
  selfSearch: '/api/log/self/search',
  selfStat: '/api/log/self/stat',
  token: '/api/log/token',
  admin: '/api/log/',
  adminSearch: '/api/log/search',
  adminStat: '/api/log/stat'
} as const

export type RouteName = keyof typeof ROUTES
const ADMIN_ROUTES: RouteName[] = ['admin', 'adminSearch', 'adminStat']

/** Who calls, and how their credentials are sent. Indices are into world.users and world.keys. */
export type Caller =
  | { kind: 'user', user: number, tokenForm: 0 | 1 | 2, idForm: 0 | 1 }
  | { kind: 'wrongToken', user: number }
  | { kind: 'otherId', user: number, other: number }
  | { kind: 'noToken', user: number }
  | { kind: 'noUserHeader', user: number }
  | { kind: 'anonymous' }
  | { kind: 'key', key: number, via: 'header' | 'headerSk' | 'param' | 'paramSk', decoy: number | null }
  | { kind: 'unknownKey', inHeader: boolean }

/** An enabled user's or admin's own credentials, in one of the accepted forms. */
export const userCaller = (users: number) => fc.record({
  kind: fc.constant('user' as const),
  // The admin is users[0]: drawn as often as all the others together, so admin routes answer 200 often.
  user: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: users - 1 })),
  tokenForm: fc.constantFrom<0 | 1 | 2>(0, 0, 1, 2),
  idForm: fc.constantFrom<0 | 1>(0, 0, 1)
})

/**
 * Any caller; most of them hold what the route asks for (an access token, or a key on the token
 * route), so that most requests get past authentication to the rows.
 */
export function callerArb (users: number, keys: number, route: RouteName): fc.Arbitrary<Caller> {
  const user = fc.integer({ min: 0, max: users - 1 })
  const token = route === 'token'
  return fc.oneof(
    { weight: token ? 1 : 12, arbitrary: userCaller(users) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrongToken' as const), user }) },
    // other = users means a user id that does not exist
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('otherId' as const), user, other: fc.integer({ min: 0, max: users }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('noToken' as const), user }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('noUserHeader' as const), user }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'anonymous' as const }) },
    {
      weight: token ? 12 : 1,
      arbitrary: fc.record({
        kind: fc.constant('key' as const),
        key: fc.integer({ min: 0, max: keys - 1 }),
        via: fc.constantFrom('header' as const, 'headerSk' as const, 'param' as const, 'paramSk' as const),
        decoy: fc.option(fc.integer({ min: 0, max: keys - 1 }), { nil: null })
      })
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('unknownKey' as const), inHeader: fc.boolean() }) }
  )
}

const WRONG_TOKEN = '0'.repeat(32)
const UNKNOWN_KEY = 'ab'.repeat(24)

/** The headers and the `key` parameter a caller sends. */
export function credentials (world: World, caller: Caller): { headers: Record<string, string>, query: Record<string, string> } {
  const userId = (i: number) => world.users[i]?.id ?? 987_654
  switch (caller.kind) {
    case 'user': {
      const u = world.users[caller.user]!
      return {
        headers: { authorization: ['Bearer ', 'bearer ', ''][caller.tokenForm] + u.token, 'new-api-user': caller.idForm === 0 ? String(u.id) : `Bearer ${u.id}` },
        query: {}
      }
    }
    case 'wrongToken': return { headers: { authorization: `Bearer ${WRONG_TOKEN}`, 'new-api-user': String(userId(caller.user)) }, query: {} }
    case 'otherId': {
      const other = caller.other === caller.user ? world.users.length : caller.other
      return { headers: { authorization: `Bearer ${world.users[caller.user]!.token}`, 'new-api-user': String(userId(other)) }, query: {} }
    }
    case 'noToken': return { headers: { 'new-api-user': String(userId(caller.user)) }, query: {} }
    case 'noUserHeader': return { headers: { authorization: `Bearer ${world.users[caller.user]!.token}` }, query: {} }
    case 'anonymous': return { headers: {}, query: {} }
    case 'key': {
      const key = world.keys[caller.key]!.key
      const decoy: Record<string, string> = caller.decoy === null ? {} : { key: world.keys[caller.decoy]!.key }
      switch (caller.via) {
        case 'header': return { headers: { authorization: `Bearer ${key}` }, query: decoy }
        case 'headerSk': return { headers: { authorization: `Bearer sk-${key}` }, query: decoy }
        case 'param': return { headers: {}, query: { key } }
        case 'paramSk': return { headers: {}, query: { key: `sk-${key}` } }
      }
      break
    }
    case 'unknownKey': return caller.inHeader ? { headers: { authorization: `Bearer sk-${UNKNOWN_KEY}` }, query: {} } : { headers: {}, query: { key: UNKNOWN_KEY } }
  }
  throw new Error('unreachable')
}

/** Who a request is answered for, or the status that refuses it. */
export type Audience = { status: 401 | 403 } | { user: WorldUser } | { key: WorldKey }

export function audienceOf (world: World, route: RouteName, caller: Caller): Audience {
  if (route === 'token') {
    // The key is the Authorization value when there is one (an access token there is no key), else `key`.
    if (caller.kind !== 'key') return { status: 401 }
    const key = world.keys[caller.key]!
    return key.usable ? { key } : { status: 401 }
  }
  if (caller.kind !== 'user') return { status: 401 }
  const user = world.users[caller.user]!
  if (user.status !== 1) return { status: 403 }
  if (ADMIN_ROUTES.includes(route) && user.role < 10) return { status: 403 }
  return { user }
}

/** Raw query values; undefined is not sent (an empty value counts as not sent, as the contract's clients send them). */
export type RawQuery = Partial<Record<
  'type' | 'start_timestamp' | 'end_timestamp' | 'token_name' | 'model_name' | 'group' | 'request_id' | 'username' | 'channel' | 'p' | 'page_size' | 'keyword',
  string
>>

/** Absent `absent` times in `absent + 1`. */
const maybe = <T>(arb: fc.Arbitrary<T>, absent = 1) => fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb })
/** Mostly valid values, now and then one the route must refuse with a 400. */
const mostly = (valid: fc.Arbitrary<string>, invalid: string[]) => fc.oneof({ weight: 40, arbitrary: valid }, { weight: 1, arbitrary: fc.constantFrom(...invalid) })

/** Filter values drawn from the data's own values (so they match), with near misses. */
export function filterArb (world: World, opts: { invalid: boolean }) {
  const times = [...new Set(world.rows.map((r) => r.created_at))]
  const names = (values: string[], misses: string[]) => fc.constantFrom(...new Set([...values, ...misses]))
  const bad = (invalid: string[]) => opts.invalid ? invalid : []
  const int = (valid: fc.Arbitrary<number>, invalid: string[]) => opts.invalid ? mostly(valid.map(String), invalid) : valid.map(String)
  const time = fc.oneof(fc.constantFrom(...times), fc.constantFrom(...times).map((t) => t + 1), fc.integer({ min: T0 - 10, max: T0 + 410 }))
  return fc.record({
    type: maybe(int(fc.integer({ min: 0, max: 7 }), bad(['8', '-1', 'x', '2.5']))),
    start_timestamp: maybe(int(time, bad(['-1', 'yesterday'])), 3),
    end_timestamp: maybe(int(time, bad(['1e3'])), 3),
    token_name: maybe(names(world.rows.map((r) => r.token_name), ['nope', 'k']), 3),
    model_name: maybe(names(MODELS, ['gpt', 'gpt-4%']), 3),
    group: maybe(names(GROUPS, ['VIP']), 3),
    request_id: maybe(names(REQUEST_IDS, ['req']), 3),
    username: maybe(names(world.users.map((u) => u.username), ['old_alice', 'nobody', 'ALICE']), 3),
    channel: maybe(int(fc.constantFrom(0, ...new Set(world.rows.map((r) => r.channel_id)), 4242), bad(['abc', '-3'])), 3)
  }).map((f) => {
    // Valid filters keep start <= end; the others may not (a 400 the model expects).
    const [start, end] = [Number(f.start_timestamp), Number(f.end_timestamp)]
    return opts.invalid || !(start > end) ? f : { ...f, start_timestamp: f.end_timestamp, end_timestamp: f.start_timestamp }
  })
}

/** Pages: p and page_size, mostly small enough to land inside the data. */
export function pageArb (opts: { invalid: boolean }) {
  const size = fc.oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 120 }))
  const p = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 6 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 1_000_000 }) })
  return fc.record({
    p: maybe(opts.invalid ? mostly(p.map(String), ['0', '-2', '1000001']) : p.map(String)),
    page_size: maybe(opts.invalid ? mostly(size.map(String), ['0', '101', '1001', '-5']) : size.map(String))
  })
}

/** Keywords: parts of the contents in any case, digits (types), LIKE's special characters, noise, and a few the routes refuse. */
export function keywordArb () {
  const part = fc.constantFrom(...FRAGMENTS).chain((f) => fc.tuple(fc.nat({ max: f.length - 1 }), fc.nat({ max: f.length - 1 }))
    .map(([a, b]) => [...f].slice(Math.min(a, b), Math.max(a, b) + 1).join('')))
  const cased = fc.tuple(part, fc.constantFrom('as-is', 'upper', 'lower')).map(([s, how]) => how === 'upper' ? s.toUpperCase() : how === 'lower' ? s.toLowerCase() : s)
  const keyword = fc.oneof(
    { weight: 8, arbitrary: cased },
    { weight: 2, arbitrary: fc.constantFrom('1', '2', '3', '4', '5', '02', '7', '9') },
    { weight: 2, arbitrary: fc.constantFrom('%', '_', '\\', '%_', 'a%b', 'a_b', '\\b', '0%', 'ax', 'a\\') },
    { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 6 }) },
    { weight: 1, arbitrary: fc.constantFrom('超', '超时', '请求', 'GPT-4', 'ok ok') }
  )
  const padded = fc.tuple(fc.constantFrom('', '', ' ', '  '), keyword, fc.constantFrom('', '', ' ', '\t')).map(([a, k, b]) => a + k + b)
  return fc.oneof(
    { weight: 30, arbitrary: padded },
    { weight: 1, arbitrary: fc.constantFrom('   ', 'x'.repeat(129), '超'.repeat(129)) },
    { weight: 1, arbitrary: fc.constant('超'.repeat(128)) }
  )
}

// ---- what a request must answer ----

/** A route's declared parameters: any other is ignored (self routes ignore username and channel). */
const DECLARED: Record<RouteName, string[]> = {
  self: ['p', 'page_size', 'type', 'start_timestamp', 'end_timestamp', 'token_name', 'model_name', 'group', 'request_id'],
  admin: ['p', 'page_size', 'type', 'start_timestamp', 'end_timestamp', 'token_name', 'model_name', 'group', 'request_id', 'username', 'channel'],
  selfStat: ['type', 'start_timestamp', 'end_timestamp', 'token_name', 'model_name', 'group'],
  adminStat: ['type', 'start_timestamp', 'end_timestamp', 'token_name', 'model_name', 'group', 'username', 'channel'],
  selfSearch: ['keyword'],
  adminSearch: ['keyword'],
  token: ['p', 'page_size']
}

const decimal = (v: string, min: number, max: number) => /^-?[0-9]+$/.test(v) && Number(v) >= min && Number(v) <= max

/** The parameters of `query` that the route must refuse (a 400 naming one of them). */
export function invalidParams (route: RouteName, query: RawQuery): string[] {
  const declared = DECLARED[route]
  const bad: string[] = []
  const check = (name: keyof RawQuery, valid: (v: string) => boolean) => {
    const v = query[name]
    if (declared.includes(name) && v !== undefined && !valid(v)) bad.push(name)
  }
  check('type', (v) => decimal(v, 0, 7))
  check('start_timestamp', (v) => decimal(v, 0, Number.MAX_SAFE_INTEGER))
  check('end_timestamp', (v) => decimal(v, 0, Number.MAX_SAFE_INTEGER))
  check('channel', (v) => decimal(v, 0, 2_147_483_647))
  check('p', (v) => decimal(v, 1, 1_000_000))
  check('page_size', (v) => decimal(v, 1, route === 'token' ? 1000 : 100))
  if (declared.includes('keyword')) {
    const k = (query.keyword ?? '').trim()
    if (k === '' || [...k].length > 128) bad.push('keyword')
  }
  if (bad.length === 0 && declared.includes('start_timestamp') && query.start_timestamp !== undefined && query.end_timestamp !== undefined &&
    Number(query.start_timestamp) > Number(query.end_timestamp)) bad.push('start_timestamp')
  return bad
}

/** The model's filter of a list or stat request, as the route reads its query (undeclared parameters dropped). */
export function filterOf (route: RouteName, query: RawQuery, audience: { user: WorldUser }): ModelFilter {
  const declared = DECLARED[route]
  // An empty value is no filter.
  const str = (name: keyof RawQuery) => declared.includes(name) && query[name] !== '' ? query[name] : undefined
  const num = (name: keyof RawQuery) => declared.includes(name) && query[name] !== undefined ? Number(query[name]) : undefined
  const self = route === 'self' || route === 'selfStat'
  return {
    userId: self ? audience.user.id : undefined,
    type: num('type'),
    start: num('start_timestamp'),
    end: num('end_timestamp'),
    token_name: str('token_name'),
    model_name: str('model_name'),
    group: str('group'),
    request_id: str('request_id'),
    username: str('username'),
    channel: num('channel')
  }
}

/** The envelope of a refusal: the status, success false, a message, a code, no data. */
export function assertRefusal (res: LightMyRequestResponse, status: number, names?: string[]): void {
  equal(res.statusCode, status, `status ${status} expected, got ${res.statusCode}: ${res.body.slice(0, 300)}`)
  const body = res.json()
  equal(body.success, false, 'success false')
  equal(typeof body.message, 'string', 'message is a string')
  ok(body.message.length > 0, 'message is not empty')
  equal(typeof body.code, 'string', `code is a string: ${res.body}`)
  ok(!('data' in body), 'no data in a refusal')
  if (names !== undefined) ok(names.some((n) => body.message.includes(n)), `the message names one of ${names.join(', ')}: ${body.message}`)
}

/** A success: 200, success true, an empty message; its data. */
export function successData (res: LightMyRequestResponse): unknown {
  equal(res.statusCode, 200, `200 expected, got ${res.statusCode}: ${res.body.slice(0, 300)}`)
  const body = res.json()
  deepStrictEqual(Object.keys(body).sort(), ['data', 'message', 'success'])
  equal(body.success, true)
  equal(body.message, '')
  return body.data
}

/** Exactly the audience's fields on every item (test/helpers/fields.ts). */
export function assertFields (items: Array<Record<string, unknown>>, admin: boolean): void {
  const want = admin ? ADMIN_FIELDS : USER_FIELDS
  for (const item of items) deepStrictEqual(Object.keys(item).sort(), want, `${admin ? 'admin' : 'user'} item fields of row ${String(item.id)}`)
}

/** Every item a row of the audience's scope: the caller's own, or the key's. */
export function assertScope (world: World, items: Array<{ id: number, user_id: number }>, scope: { userId?: number, tokenId?: number }): void {
  const byId = new Map(world.rows.map((r) => [r.id, r]))
  for (const item of items) {
    const row = byId.get(item.id)
    ok(row !== undefined, `item ${item.id} is a row of the data`)
    if (scope.userId !== undefined) equal(row.user_id, scope.userId, `row ${item.id} belongs to user ${row.user_id}, not the caller ${scope.userId}`)
    if (scope.tokenId !== undefined) equal(row.token_id, scope.tokenId, `row ${item.id} belongs to key ${row.token_id}, not the caller's key ${scope.tokenId}`)
  }
}

export async function send (world: World, route: RouteName, caller: Caller, query: RawQuery, extra: Record<string, string> = {}) {
  const cred = credentials(world, caller)
  const q: Record<string, string> = { ...cred.query, ...extra }
  for (const [name, value] of Object.entries(query)) if (value !== undefined) q[name] = value
  return await world.app.inject({ method: 'GET', url: ROUTES[route], headers: cred.headers, query: q })
}
