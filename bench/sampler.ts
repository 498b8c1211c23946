// Picks realistic request parameters from the database once, before any load: users by how many
// rows they own (heavy, typical, none), API keys, names to filter on, rare and common keywords,
// and cursors deep into a heavy user's history.
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { encodeCursor } from '../src/lib/cursor.js'
import { sample, type Rng } from './random.js'

export interface BenchUser {
  id: number
  token: string
  /** rows this user owns in logs */
  rows: number
}

export interface BenchKey {
  /** tokens.key as stored (without sk-) */
  key: string
  tokenId: number
  userId: number
  rows: number
}

export interface DeepCursor {
  user: BenchUser
  cursor: string
  /** rows skipped: the cursor's page starts at this offset in the user's newest-first list */
  depth: number
}

export interface RareKeyword {
  keyword: string
  /** the owner of a matching row, so that self search finds it */
  owner: BenchUser
  /** matching rows in the whole table (at most RARE_MAX_MATCHES; 0 for a synthetic keyword) */
  matches: number
}

export interface BenchParams {
  rows: number
  minCreatedAt: number
  maxCreatedAt: number
  users: { heavy: BenchUser[], typical: BenchUser[], empty: BenchUser[] }
  /** users with a page ~50 of 20 to read (else the heaviest, whose last page is used) */
  deepPageUsers: BenchUser[]
  deepCursors: DeepCursor[]
  admin: BenchUser & { created: boolean }
  keys: { heavy: BenchKey[], typical: BenchKey[] }
  /** token names of the sampled users, by user id */
  tokenNamesByUser: Map<number, string[]>
  // Values as they occur in a sample of rows, so a uniform pick follows the data's own skew.
  models: string[]
  tokenNames: string[]
  groups: string[]
  usernames: string[]
  channels: number[]
  types: number[]
  rareKeywords: RareKeyword[]
  commonKeywords: string[]
}

export const DEEP_PAGE = 50
export const PAGE_SIZE = 20
/** 5,000 pages of 20 */
export const DEEP_CURSOR_ROWS = 100_000
const RARE_MAX_MATCHES = 10
const SAMPLE_ROWS = 30_000
const BENCH_ADMIN = 'bench_admin'

export interface SampleOptions {
  rng?: Rng
  /** create a root user named bench_admin when no enabled admin has an access token (default true) */
  createAdmin?: boolean
}

/** `%`, `_` and `\` as plain characters, as the service matches keywords. */
export function likePattern (keyword: string): string {
  return `%${keyword.replace(/[\\%_]/g, (c) => '\\' + c)}%`
}

async function rowsOf<T> (client: pg.ClientBase, text: string, values: unknown[] = []): Promise<T[]> {
  return (await client.query(text, values)).rows as T[]
}

/** Exact row count and time range of logs. */
export async function tableStats (client: pg.ClientBase) {
  const [count] = await rowsOf<{ n: string }>(client, 'select count(*) as n from logs')
  const [range] = await rowsOf<{ lo: string | null, hi: string | null }>(client, 'select min(created_at) as lo, max(created_at) as hi from logs')
  const now = Math.floor(Date.now() / 1000)
  return { rows: Number(count?.n ?? 0), minCreatedAt: Number(range?.lo ?? now), maxCreatedAt: Number(range?.hi ?? now) }
}

async function findAdmin (client: pg.ClientBase, create: boolean): Promise<BenchParams['admin']> {
  const [found] = await rowsOf<{ id: number, token: string }>(client, `
    select id, access_token as token from users
    where role >= 10 and status = 1 and access_token is not null and access_token <> ''
    order by role desc, id limit 1`)
  if (found !== undefined) return { id: found.id, token: found.token, rows: 0, created: false }
  if (!create) throw new Error('no enabled admin user with an access token: the admin routes cannot be measured')
  const token = randomBytes(24).toString('base64url')
  const [made] = await rowsOf<{ id: number }>(client, `
    insert into users (username, display_name, role, status, access_token) values ($1, 'benchmark admin', 100, 1, $2)
    on conflict (username) do update set role = 100, status = 1, access_token = excluded.access_token
    returning id`, [BENCH_ADMIN, token])
  return { id: made!.id, token, rows: 0, created: true }
}

function classifyUsers (all: BenchUser[], rng: Rng): BenchParams['users'] {
  const withRows = all.filter((u) => u.rows > 0).sort((a, b) => b.rows - a.rows)
  const heavyCount = Math.min(20, Math.max(1, Math.ceil(withRows.length / 100)))
  const heavy = withRows.slice(0, heavyCount)
  const rest = withRows.slice(heavyCount)
  // Typical: the middle half of the users who have rows.
  const middle = rest.length < 4 ? rest : rest.slice(Math.floor(rest.length / 4), Math.ceil(rest.length * 3 / 4))
  return {
    heavy,
    typical: sample(rng, middle, 200),
    empty: sample(rng, all.filter((u) => u.rows === 0), 50)
  }
}

async function deepCursors (client: pg.ClientBase, heavy: BenchUser[], rng: Rng): Promise<DeepCursor[]> {
  const cursors: DeepCursor[] = []
  for (const user of heavy.slice(0, 3)) {
    const deepest = Math.min(DEEP_CURSOR_ROWS, user.rows - PAGE_SIZE)
    if (deepest < 1) continue
    // A few depths just short of the target, so the load does not read one cached page.
    for (let i = 0; i < 4; i++) {
      const depth = Math.max(1, deepest - Math.floor(rng() * deepest * 0.02))
      const [row] = await rowsOf<{ created_at: string, id: string }>(client, `
        select created_at, id from logs where user_id = $1
        order by created_at desc, id desc offset $2 limit 1`, [user.id, depth - 1])
      if (row === undefined) continue
      cursors.push({ user, depth, cursor: encodeCursor({ created_at: Number(row.created_at), id: Number(row.id) }) })
    }
  }
  return cursors
}

async function usableKeys (client: pg.ClientBase, rng: Rng): Promise<BenchParams['keys']> {
  const keys = (await rowsOf<{ key: string, token_id: number, user_id: number, n: string | null }>(client, `
    select t.key, t.id as token_id, t.user_id, c.n
    from tokens t
    join users u on u.id = t.user_id
    left join (select token_id, count(*) as n from logs where token_id > 0 group by token_id) c on c.token_id = t.id
    where t.deleted_at is null and t.status <> 2 and u.status = 1`))
    .map((r) => ({ key: r.key, tokenId: r.token_id, userId: r.user_id, rows: Number(r.n ?? 0) }))
    .sort((a, b) => b.rows - a.rows)
  const withRows = keys.filter((k) => k.rows > 0)
  const heavyCount = Math.min(10, Math.max(1, Math.ceil(withRows.length / 100)))
  const heavy = withRows.slice(0, heavyCount)
  const rest = withRows.length > heavyCount ? withRows.slice(heavyCount) : keys.filter((k) => k.rows === 0)
  return { heavy, typical: sample(rng, rest, 200) }
}

interface SampledRow {
  user_id: number
  type: number
  model_name: string
  token_name: string
  group: string
  username: string
  channel_id: number
  content: string
}

async function sampleRows (client: pg.ClientBase, rows: number): Promise<SampledRow[]> {
  if (rows === 0) return []
  // Whole pages at random: cheap on a big table, and every row on a small one.
  const percent = Math.min(100, Math.max(0.001, SAMPLE_ROWS / rows * 100))
  return await rowsOf<SampledRow>(client, `
    select user_id, type, model_name, token_name, "group", username, channel_id, left(content, 1000) as content
    from logs tablesample system ($1) limit ${SAMPLE_ROWS}`, [percent])
}

/** Words that look like ids: `req_<hex>` first, then long tokens holding digits. */
export function idLikeWords (content: string): string[] {
  const reqIds = content.match(/req_[0-9A-Za-z]{8,}/g) ?? []
  const others = (content.match(/[0-9A-Za-z_-]{12,}/g) ?? []).filter((w) => /[0-9]/.test(w) && /[A-Za-z]/.test(w))
  return [...new Set([...reqIds, ...others])]
}

async function rareKeywords (client: pg.ClientBase, rows: SampledRow[], usersById: Map<number, BenchUser>, rng: Rng, fallbackOwner: BenchUser | undefined): Promise<RareKeyword[]> {
  const candidates: Array<{ keyword: string, owner: BenchUser }> = []
  const seen = new Set<string>()
  for (const row of sample(rng, rows, rows.length)) {
    const owner = usersById.get(row.user_id)
    if (owner === undefined) continue
    for (const keyword of idLikeWords(row.content)) {
      if (seen.has(keyword) || keyword.length > 128) continue
      seen.add(keyword)
      candidates.push({ keyword, owner })
    }
    if (candidates.length >= 40) break
  }
  // req_ ids first: they are what an operator pastes from an error report.
  candidates.sort((a, b) => Number(b.keyword.startsWith('req_')) - Number(a.keyword.startsWith('req_')))

  const found: RareKeyword[] = []
  for (const c of candidates.slice(0, 20)) {
    const [row] = await rowsOf<{ n: string }>(client,
      `select count(*) as n from (select 1 from logs where content ilike $1 limit ${RARE_MAX_MATCHES + 1}) m`, [likePattern(c.keyword)])
    const matches = Number(row?.n ?? 0)
    if (matches >= 1 && matches <= RARE_MAX_MATCHES) found.push({ ...c, matches })
    if (found.length >= 10) break
  }
  if (found.length === 0 && fallbackOwner !== undefined) {
    // Nothing id-like in the data: a keyword that matches nothing is the rarest there is.
    found.push({ keyword: `req_${randomBytes(8).toString('hex')}`, owner: fallbackOwner, matches: 0 })
  }
  return found
}

/** ASCII words of 4+ letters found in at least 1 % of the sampled rows, most frequent first; 'ratio' leads when present. */
export function commonWords (contents: string[], max = 3): string[] {
  const counts = new Map<string, number>()
  for (const content of contents) {
    const words = new Set((content.toLowerCase().match(/[a-z]{4,}/g) ?? []))
    for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1)
  }
  const floor = Math.max(1, contents.length / 100)
  const words = [...counts.entries()].filter(([, n]) => n >= floor).sort((a, b) => b[1] - a[1]).map(([w]) => w)
  const ordered = words.includes('ratio') ? ['ratio', ...words.filter((w) => w !== 'ratio')] : words
  return ordered.slice(0, max)
}

/** Everything the request generators need; reads only, except for creating bench_admin when there is no admin. */
export async function sampleParams (client: pg.ClientBase, opts: SampleOptions = {}): Promise<BenchParams> {
  const rng = opts.rng ?? Math.random
  const stats = await tableStats(client)
  const admin = await findAdmin(client, opts.createAdmin ?? true)

  // Users as users see the service: admins (bench_admin included) stay out of the mix.
  const all = (await rowsOf<{ id: number, token: string, n: string | null }>(client, `
    select u.id, u.access_token as token, c.n
    from users u
    left join (select user_id, count(*) as n from logs group by user_id) c on c.user_id = u.id
    where u.status = 1 and u.role < 10 and u.access_token is not null and u.access_token <> ''`))
    .map((r) => ({ id: r.id, token: r.token, rows: Number(r.n ?? 0) }))
  const users = classifyUsers(all, rng)
  const byRows = [...all].sort((a, b) => b.rows - a.rows)
  const deepEnough = byRows.filter((u) => u.rows >= DEEP_PAGE * PAGE_SIZE + PAGE_SIZE)
  const deepPageUsers = deepEnough.length > 0 ? sample(rng, deepEnough, 50) : byRows.slice(0, 1).filter((u) => u.rows > 0)

  const sampledUsers = [...users.heavy, ...users.typical, ...users.empty, ...deepPageUsers]
  const tokenNamesByUser = new Map<number, string[]>()
  for (const r of await rowsOf<{ user_id: number, name: string }>(client,
    'select user_id, name from tokens where user_id = any($1) and name <> \'\' and deleted_at is null', [sampledUsers.map((u) => u.id)])) {
    tokenNamesByUser.set(r.user_id, [...(tokenNamesByUser.get(r.user_id) ?? []), r.name])
  }

  const rows = await sampleRows(client, stats.rows)
  const nonEmpty = (values: string[]) => values.filter((v) => v !== '').slice(0, 5000)
  const usersById = new Map(all.map((u) => [u.id, u]))

  return {
    ...stats,
    users,
    deepPageUsers,
    deepCursors: await deepCursors(client, users.heavy, rng),
    admin,
    keys: await usableKeys(client, rng),
    tokenNamesByUser,
    models: nonEmpty(rows.map((r) => r.model_name)),
    tokenNames: nonEmpty(rows.map((r) => r.token_name)),
    groups: nonEmpty(rows.map((r) => r.group)),
    usernames: nonEmpty(rows.map((r) => r.username)),
    channels: rows.map((r) => r.channel_id).filter((c) => c > 0).slice(0, 5000),
    types: rows.map((r) => r.type).filter((t) => t > 0).slice(0, 5000),
    rareKeywords: await rareKeywords(client, rows, usersById, rng, users.typical[0] ?? users.heavy[0] ?? users.empty[0]),
    commonKeywords: commonWords(rows.map((r) => r.content))
  }
}

/** What was sampled, without credentials: for the report. */
export function describeParams (p: BenchParams) {
  return {
    users: {
      heavy: p.users.heavy.length,
      typical: p.users.typical.length,
      empty: p.users.empty.length,
      heaviest_rows: p.users.heavy[0]?.rows ?? 0,
      typical_median_rows: median(p.users.typical.map((u) => u.rows))
    },
    deep_page_users: p.deepPageUsers.length,
    deep_cursor_depths: [...new Set(p.deepCursors.map((c) => c.depth))],
    admin: { id: p.admin.id, created: p.admin.created },
    keys: { heavy: p.keys.heavy.length, typical: p.keys.typical.length, heaviest_rows: p.keys.heavy[0]?.rows ?? 0 },
    distinct: {
      models: new Set(p.models).size,
      token_names: new Set(p.tokenNames).size,
      groups: new Set(p.groups).size,
      usernames: new Set(p.usernames).size,
      channels: new Set(p.channels).size
    },
    rare_keywords: p.rareKeywords.map((k) => ({ length: k.keyword.length, matches: k.matches, req_id: k.keyword.startsWith('req_') })),
    common_keywords: p.commonKeywords
  }
}

function median (values: number[]): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
