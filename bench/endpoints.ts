// The measured endpoints: each one a generator of randomised requests (path + headers) over the
// sampled parameters, and the target the issue sets for it (10M rows, 50 connections).
import { DEEP_PAGE, PAGE_SIZE, type BenchKey, type BenchParams, type BenchUser } from './sampler.js'
import { pick, pickWeighted, randInt, sample, type Rng } from './random.js'

export const ENDPOINT_NAMES = [
  'static',
  'naive',
  'self_list',
  'self_list_filtered',
  'self_list_deep_page',
  'self_list_cursor_deep',
  'token_logs',
  'self_stat_1d',
  'self_stat_30d',
  'self_search_rare',
  'self_search_common',
  'admin_list',
  'admin_list_filtered',
  'admin_stat_1d',
  'admin_stat_30d',
  'admin_search_rare',
  'admin_search_common'
] as const

export type EndpointName = typeof ENDPOINT_NAMES[number]

export interface BenchRequest {
  method: 'GET' | 'DELETE'
  path: string
  headers: Record<string, string>
}

export interface Target {
  /** p99 latency ceiling, ms */
  p99Ms?: number
  /** throughput floor as a multiple of the naive baseline's req/s */
  minNaiveRatio?: number
}

export interface EndpointSpec {
  name: EndpointName
  server: 'service' | 'baselines'
  target: Target
  /** why it cannot run on this database (then next() is never called) */
  skip?: string
  next: () => BenchRequest
}

const READ_P99_MS = 50

export const TARGETS: Record<EndpointName, Target> = {
  static: {},
  naive: {},
  self_list: { p99Ms: READ_P99_MS, minNaiveRatio: 1 },
  self_list_filtered: { p99Ms: READ_P99_MS },
  self_list_deep_page: { p99Ms: READ_P99_MS },
  self_list_cursor_deep: { p99Ms: 20 },
  token_logs: { p99Ms: READ_P99_MS, minNaiveRatio: 1 },
  self_stat_1d: { p99Ms: READ_P99_MS },
  self_stat_30d: { p99Ms: READ_P99_MS },
  self_search_rare: { p99Ms: READ_P99_MS },
  self_search_common: { p99Ms: READ_P99_MS },
  admin_list: { p99Ms: READ_P99_MS },
  admin_list_filtered: { p99Ms: READ_P99_MS },
  admin_stat_1d: { p99Ms: READ_P99_MS },
  admin_stat_30d: { p99Ms: READ_P99_MS },
  admin_search_rare: { p99Ms: READ_P99_MS },
  admin_search_common: { p99Ms: READ_P99_MS }
}

const DAY = 86_400

export function userHeaders (user: { id: number, token: string }): Record<string, string> {
  return { authorization: `Bearer ${user.token}`, 'new-api-user': String(user.id) }
}

function get (path: string, query: Record<string, string | number>, headers: Record<string, string> = {}): BenchRequest {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()
  return { method: 'GET', path: qs === '' ? path : `${path}?${qs}`, headers }
}

/** Request generators over the sampled parameters; rng makes them repeatable in tests. */
export function buildEndpoints (p: BenchParams, rng: Rng = Math.random): EndpointSpec[] {
  const userGroups = [
    { weight: 0.2, items: p.users.heavy },
    { weight: 0.7, items: p.users.typical },
    { weight: 0.1, items: p.users.empty }
  ]
  const anyUser = userGroups.some((g) => g.items.length > 0)
  const pickUser = (): BenchUser => pickWeighted(rng, userGroups)
  const pickKey = (): BenchKey => pickWeighted(rng, [{ weight: 0.3, items: p.keys.heavy }, { weight: 0.7, items: p.keys.typical }])
  const admin = userHeaders(p.admin)

  /** [start, end] of `span` seconds ending somewhere in the last 6 hours of data. */
  function window (span: number) {
    const end = p.maxCreatedAt - randInt(rng, 0, 6 * 3600)
    return { start_timestamp: Math.max(0, end - span), end_timestamp: end }
  }

  /** A window of `span` seconds anywhere in the data. */
  function anyWindow (span: number) {
    const lo = Math.min(p.minCreatedAt + span, p.maxCreatedAt)
    const end = randInt(rng, lo, p.maxCreatedAt)
    return { start_timestamp: Math.max(0, end - span), end_timestamp: end }
  }

  type Filters = Record<string, string | number>
  type FilterMaker = () => Filters

  /** One or two filters of those that have values to pick from. */
  function filterMix (makers: Array<[string, unknown[], FilterMaker]>): Filters {
    const live = makers.filter(([, values]) => values.length > 0)
    if (live.length === 0) return {}
    const chosen = sample(rng, live, rng() < 0.6 ? 1 : 2)
    return Object.assign({}, ...chosen.map(([, , make]) => make()))
  }

  const spans = [DAY, 7 * DAY]
  const windowValues = p.rows > 0 ? [1] : []

  const specs: Array<Omit<EndpointSpec, 'target'> & { target?: Target }> = [
    {
      name: 'static',
      server: 'baselines',
      next: () => get('/static', {})
    },
    {
      name: 'naive',
      server: 'baselines',
      skip: anyUser ? undefined : 'no enabled user with an access token',
      // Same user mix as self_list, so the ratio compares like with like.
      next: () => get('/naive', { user: pickUser().id })
    },
    {
      name: 'self_list',
      server: 'service',
      skip: anyUser ? undefined : 'no enabled user with an access token',
      next: () => {
        const user = pickUser()
        return get('/api/log/self', { p: 1, page_size: PAGE_SIZE }, userHeaders(user))
      }
    },
    {
      name: 'self_list_filtered',
      server: 'service',
      skip: anyUser ? undefined : 'no enabled user with an access token',
      next: () => {
        const user = pickUser()
        const ownTokens = p.tokenNamesByUser.get(user.id) ?? []
        const filters = filterMix([
          ['type', p.types, () => ({ type: pick(rng, p.types) })],
          ['model_name', p.models, () => ({ model_name: pick(rng, p.models) })],
          ['token_name', ownTokens, () => ({ token_name: pick(rng, ownTokens) })],
          ['group', p.groups, () => ({ group: pick(rng, p.groups) })],
          ['window', windowValues, () => window(pick(rng, spans))]
        ])
        return get('/api/log/self', { p: 1, page_size: PAGE_SIZE, ...filters }, userHeaders(user))
      }
    },
    {
      name: 'self_list_deep_page',
      server: 'service',
      skip: p.deepPageUsers.length > 0 ? undefined : 'no user with logs',
      next: () => {
        const user = pick(rng, p.deepPageUsers)
        const lastPage = Math.max(1, Math.ceil(user.rows / PAGE_SIZE))
        const page = Math.min(lastPage, randInt(rng, DEEP_PAGE - 5, DEEP_PAGE + 5))
        return get('/api/log/self', { p: page, page_size: PAGE_SIZE }, userHeaders(user))
      }
    },
    {
      name: 'self_list_cursor_deep',
      server: 'service',
      skip: p.deepCursors.length > 0 ? undefined : 'no user with more than one page of logs',
      next: () => {
        const c = pick(rng, p.deepCursors)
        return get('/api/log/self', { page_size: PAGE_SIZE, cursor: c.cursor }, userHeaders(c.user))
      }
    },
    {
      name: 'token_logs',
      server: 'service',
      skip: p.keys.heavy.length + p.keys.typical.length > 0 ? undefined : 'no usable API key',
      next: () => {
        const key = pickKey()
        const page = rng() < 0.8 ? 1 : randInt(rng, 2, 5)
        // The header form (it keeps the key out of access logs), with and without sk-.
        const bearer = rng() < 0.5 ? `sk-${key.key}` : key.key
        return get('/api/log/token', { p: page, page_size: PAGE_SIZE }, { authorization: `Bearer ${bearer}` })
      }
    },
    ...(['1d', '30d'] as const).map((label) => ({
      name: `self_stat_${label}` as const,
      server: 'service' as const,
      skip: anyUser ? undefined : 'no enabled user with an access token',
      next: () => {
        const user = pickUser()
        // type defaults to 2 (consume), what the dashboard asks for; sometimes all types.
        const type: Record<string, number> = rng() < 0.8 ? {} : { type: 0 }
        return get('/api/log/self/stat', { ...type, ...window(label === '1d' ? DAY : 30 * DAY) }, userHeaders(user))
      }
    })),
    {
      name: 'self_search_rare',
      server: 'service',
      skip: p.rareKeywords.length > 0 ? undefined : 'no user to search as',
      next: () => {
        const k = pick(rng, p.rareKeywords)
        return get('/api/log/self/search', { keyword: k.keyword }, userHeaders(k.owner))
      }
    },
    {
      name: 'self_search_common',
      server: 'service',
      skip: anyUser && p.commonKeywords.length > 0 ? undefined : 'no common word in the sampled content',
      next: () => get('/api/log/self/search', { keyword: pick(rng, p.commonKeywords) }, userHeaders(pickUser()))
    },
    {
      name: 'admin_list',
      server: 'service',
      next: () => get('/api/log/', { p: rng() < 0.8 ? 1 : randInt(rng, 2, 5), page_size: PAGE_SIZE }, admin)
    },
    {
      name: 'admin_list_filtered',
      server: 'service',
      next: () => {
        const filters = filterMix([
          ['type', p.types, () => ({ type: pick(rng, p.types) })],
          ['model_name', p.models, () => ({ model_name: pick(rng, p.models) })],
          ['username', p.usernames, () => ({ username: pick(rng, p.usernames) })],
          ['token_name', p.tokenNames, () => ({ token_name: pick(rng, p.tokenNames) })],
          ['channel', p.channels, () => ({ channel: pick(rng, p.channels) })],
          ['group', p.groups, () => ({ group: pick(rng, p.groups) })],
          ['window', windowValues, () => anyWindow(pick(rng, spans))]
        ])
        return get('/api/log/', { p: 1, page_size: PAGE_SIZE, ...filters }, admin)
      }
    },
    ...(['1d', '30d'] as const).map((label) => ({
      name: `admin_stat_${label}` as const,
      server: 'service' as const,
      next: () => {
        const type: Record<string, number> = rng() < 0.8 ? {} : { type: 0 }
        return get('/api/log/stat', { ...type, ...window(label === '1d' ? DAY : 30 * DAY) }, admin)
      }
    })),
    {
      name: 'admin_search_rare',
      server: 'service',
      skip: p.rareKeywords.length > 0 ? undefined : 'no rare keyword',
      next: () => get('/api/log/search', { keyword: pick(rng, p.rareKeywords).keyword }, admin)
    },
    {
      name: 'admin_search_common',
      server: 'service',
      skip: p.commonKeywords.length > 0 ? undefined : 'no common word in the sampled content',
      next: () => get('/api/log/search', { keyword: pick(rng, p.commonKeywords) }, admin)
    }
  ]

  return specs.map((s) => ({ ...s, target: TARGETS[s.name] }))
}
