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

type Filters = Record<string, string | number>
/** A filter the mix may choose: its name, the values it picks from (none: it sits out), a maker. */
type FilterOption = [string, readonly unknown[], () => Filters]
type Spec = Omit<EndpointSpec, 'target'> & { target?: Target }

/** What the request generators draw from; every draw goes through the one rng, in call order. */
interface Draws {
  p: BenchParams
  rng: Rng
  /** why the user-facing endpoints cannot run (undefined: they can) */
  noUser: string | undefined
  admin: Record<string, string>
  pickUser: () => BenchUser
  pickKey: () => BenchKey
  /** [start, end] of `span` seconds ending somewhere in the last 6 hours of data. */
  window: (span: number) => Filters
  /** A window of `span` seconds anywhere in the data. */
  anyWindow: (span: number) => Filters
  /** One or two filters of those that have values to pick from. */
  filterMix: (options: FilterOption[]) => Filters
  /** `name` = one of `values` */
  oneOf: (name: string, values: ReadonlyArray<string | number>) => FilterOption
  /** a window of a day or a week, made by `make`, when there are rows to window */
  windowOf: (make: (span: number) => Filters) => FilterOption
  /** a stat query over the last day or 30 days */
  statQuery: (label: '1d' | '30d') => Filters
}

function draws (p: BenchParams, rng: Rng): Draws {
  const userGroups = [
    { weight: 0.2, items: p.users.heavy },
    { weight: 0.7, items: p.users.typical },
    { weight: 0.1, items: p.users.empty }
  ]
  const window = (span: number) => {
    const end = p.maxCreatedAt - randInt(rng, 0, 6 * 3600)
    return { start_timestamp: Math.max(0, end - span), end_timestamp: end }
  }
  const spans = [DAY, 7 * DAY]
  const windowValues = p.rows > 0 ? [1] : []
  return {
    p,
    rng,
    noUser: userGroups.some((g) => g.items.length > 0) ? undefined : 'no enabled user with an access token',
    admin: userHeaders(p.admin),
    pickUser: () => pickWeighted(rng, userGroups),
    pickKey: () => pickWeighted(rng, [{ weight: 0.3, items: p.keys.heavy }, { weight: 0.7, items: p.keys.typical }]),
    window,
    anyWindow: (span) => {
      const lo = Math.min(p.minCreatedAt + span, p.maxCreatedAt)
      const end = randInt(rng, lo, p.maxCreatedAt)
      return { start_timestamp: Math.max(0, end - span), end_timestamp: end }
    },
    filterMix: (options) => {
      const live = options.filter(([, values]) => values.length > 0)
      if (live.length === 0) return {}
      const chosen = sample(rng, live, rng() < 0.6 ? 1 : 2)
      return Object.assign({}, ...chosen.map(([, , make]) => make()))
    },
    oneOf: (name, values) => [name, values, () => ({ [name]: pick(rng, values) })],
    windowOf: (make) => ['window', windowValues, () => make(pick(rng, spans))],
    statQuery: (label) => {
      // type defaults to 2 (consume), what the dashboard asks for; sometimes all types.
      const type: Record<string, number> = rng() < 0.8 ? {} : { type: 0 }
      return { ...type, ...window(label === '1d' ? DAY : 30 * DAY) }
    }
  }
}

/** The two baselines the service is compared with. */
function baselineSpecs (d: Draws): Spec[] {
  return [
    {
      name: 'static',
      server: 'baselines',
      next: () => get('/static', {})
    },
    {
      name: 'naive',
      server: 'baselines',
      skip: d.noUser,
      // Same user mix as self_list, so the ratio compares like with like.
      next: () => get('/naive', { user: d.pickUser().id })
    }
  ]
}

/** A user's own list: the first page, filtered, deep by page number, deep by cursor. */
function selfListSpecs (d: Draws): Spec[] {
  const { p, rng } = d
  return [
    {
      name: 'self_list',
      server: 'service',
      skip: d.noUser,
      next: () => {
        const user = d.pickUser()
        return get('/api/log/self', { p: 1, page_size: PAGE_SIZE }, userHeaders(user))
      }
    },
    {
      name: 'self_list_filtered',
      server: 'service',
      skip: d.noUser,
      next: () => {
        const user = d.pickUser()
        const filters = d.filterMix([
          d.oneOf('type', p.types),
          d.oneOf('model_name', p.models),
          d.oneOf('token_name', p.tokenNamesByUser.get(user.id) ?? []),
          d.oneOf('group', p.groups),
          d.windowOf(d.window)
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
    }
  ]
}

/** A user's other reads: logs by API key, stats, search. */
function userReadSpecs (d: Draws): Spec[] {
  const { p, rng } = d
  return [
    {
      name: 'token_logs',
      server: 'service',
      skip: p.keys.heavy.length + p.keys.typical.length > 0 ? undefined : 'no usable API key',
      next: () => {
        const key = d.pickKey()
        const page = rng() < 0.8 ? 1 : randInt(rng, 2, 5)
        // The header form (it keeps the key out of access logs), with and without sk-.
        const bearer = rng() < 0.5 ? `sk-${key.key}` : key.key
        return get('/api/log/token', { p: page, page_size: PAGE_SIZE }, { authorization: `Bearer ${bearer}` })
      }
    },
    ...(['1d', '30d'] as const).map((label) => ({
      name: `self_stat_${label}` as const,
      server: 'service' as const,
      skip: d.noUser,
      next: () => {
        const user = d.pickUser()
        return get('/api/log/self/stat', d.statQuery(label), userHeaders(user))
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
      skip: d.noUser === undefined && p.commonKeywords.length > 0 ? undefined : 'no common word in the sampled content',
      next: () => get('/api/log/self/search', { keyword: pick(rng, p.commonKeywords) }, userHeaders(d.pickUser()))
    }
  ]
}

/** The admin's reads over every user's logs. */
function adminSpecs (d: Draws): Spec[] {
  const { p, rng, admin } = d
  return [
    {
      name: 'admin_list',
      server: 'service',
      next: () => get('/api/log/', { p: rng() < 0.8 ? 1 : randInt(rng, 2, 5), page_size: PAGE_SIZE }, admin)
    },
    {
      name: 'admin_list_filtered',
      server: 'service',
      next: () => {
        const filters = d.filterMix([
          d.oneOf('type', p.types),
          d.oneOf('model_name', p.models),
          d.oneOf('username', p.usernames),
          d.oneOf('token_name', p.tokenNames),
          d.oneOf('channel', p.channels),
          d.oneOf('group', p.groups),
          d.windowOf(d.anyWindow)
        ])
        return get('/api/log/', { p: 1, page_size: PAGE_SIZE, ...filters }, admin)
      }
    },
    ...(['1d', '30d'] as const).map((label) => ({
      name: `admin_stat_${label}` as const,
      server: 'service' as const,
      next: () => get('/api/log/stat', d.statQuery(label), admin)
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
}

/** Request generators over the sampled parameters, in ENDPOINT_NAMES order; rng makes them repeatable in tests. */
export function buildEndpoints (p: BenchParams, rng: Rng = Math.random): EndpointSpec[] {
  const d = draws(p, rng)
  const specs = [...baselineSpecs(d), ...selfListSpecs(d), ...userReadSpecs(d), ...adminSpecs(d)]
  return specs.map((s) => ({ ...s, target: TARGETS[s.name] }))
}
