// Property-based: random users, keys and log rows (one seed), random requests on every /api/log
// read route with random credentials and parameters, each answer compared with what the contract
// computes over the same rows in plain JS (test/helpers/isolation.ts):
// 1. a user sees only their rows, a key only its rows, a user never an admin route;
// 2. each audience gets exactly its item fields;
// 3. items, totals and stats equal the model's;
// 4. nothing answers 5xx, every refusal is the error envelope.
// Once with the stat deltas the triggers write still pending, once after they are folded into
// the rollups: the totals and stats read both.
//
// A failure prints FC_SEED=<n>: `FC_SEED=<n> npx tap --disable-coverage test/properties/isolation.test.ts`
// replays it (same data, same requests). FC_RUNS=<n> runs every property n times instead.
import t from 'tap'
import fc from 'fast-check'
import { sql } from 'kysely'
import { deepStrictEqual, equal, ok } from 'node:assert/strict'
import type { LightMyRequestResponse } from 'fastify'
import { foldStatDeltas } from '../../src/queries/rollups/fold.js'
import { buildTestApp } from '../helpers/app.js'
import {
  adminItem, assertFields, assertProperty, assertRefusal, assertScope, audienceOf, buildWorld, callerArb, datasetFor, filterArb,
  filterOf, invalidParams, keywordArb, keywordMatches, pageArb, propertySettings, select, send, successData, userCaller, userItem,
  type Caller, type RawQuery, type RouteName, type World, type WorldKey, type WorldUser
} from '../helpers/isolation.js'

const { seed, runs } = propertySettings()
const nowSeconds = () => Math.floor(Date.now() / 1000)

interface Item { id: number, user_id: number, [field: string]: unknown }

function checkList (world: World, route: 'self' | 'admin', query: RawQuery, audience: { user: WorldUser }, data: unknown) {
  const admin = route === 'admin'
  const matching = select(world, filterOf(route, query, audience))
  const p = Number(query.p ?? 1)
  const size = Number(query.page_size ?? 20)
  const page = data as { items: Item[], total: number, total_exact: boolean, page: number, page_size: number, next_cursor: unknown }
  deepStrictEqual(Object.keys(page).sort(), ['items', 'next_cursor', 'page', 'page_size', 'total', 'total_exact'])
  assertFields(page.items, admin)
  if (!admin) assertScope(world, page.items, { userId: audience.user.id })
  deepStrictEqual(page.items, matching.slice((p - 1) * size, p * size).map(admin ? adminItem : userItem), 'the page is the model\'s, newest first')
  equal(page.total, matching.length, 'total counts every matching row')
  equal(page.total_exact, true, 'a total this small is exact')
  equal(page.page, p)
  equal(page.page_size, size)
  if (page.items.length < size) equal(page.next_cursor, null, 'no cursor after a short page')
  // A full page that ends the rows may go either way (the next page is then empty).
  else if (p * size < matching.length) equal(typeof page.next_cursor, 'string', 'a cursor while rows remain')
}

function checkSearch (world: World, route: 'selfSearch' | 'adminSearch', query: RawQuery, audience: { user: WorldUser }, data: unknown) {
  const admin = route === 'adminSearch'
  const keyword = query.keyword!.trim()
  const scope = admin ? {} : { userId: audience.user.id }
  const items = data as Item[]
  assertFields(items, admin)
  assertScope(world, items, scope)
  const want = select(world, scope).filter((r) => keywordMatches(r, keyword)).slice(0, 100)
  deepStrictEqual(items, want.map(admin ? adminItem : userItem), `the 100 newest matches of ${JSON.stringify(keyword)}`)
}

function checkToken (world: World, query: RawQuery, key: WorldKey, data: unknown) {
  const p = Number(query.p ?? 1)
  const size = Number(query.page_size ?? 100)
  const items = data as Item[]
  assertFields(items, false)
  assertScope(world, items, { tokenId: key.id })
  deepStrictEqual(items, select(world, { tokenId: key.id }).slice((p - 1) * size, p * size).map(userItem), 'the key\'s page')
}

/** quota over the window; rpm and tpm over [now - 60, now] for a `now` the server read while answering. */
function checkStat (world: World, route: 'selfStat' | 'adminStat', query: RawQuery, audience: { user: WorldUser }, data: unknown, clock: [number, number]) {
  const f = filterOf(route, query, audience)
  const filter = { ...f, type: f.type ?? 2 }
  const stat = data as { quota: number, rpm: number, tpm: number }
  deepStrictEqual(Object.keys(stat).sort(), ['quota', 'rpm', 'tpm'])
  equal(stat.quota, select(world, filter).reduce((sum, r) => sum + r.quota, 0), 'quota is the sum over the window')
  const recent = (now: number) => {
    const rows = select(world, { ...filter, start: now - 60, end: now })
    return { rpm: rows.length, tpm: rows.reduce((sum, r) => sum + r.prompt_tokens + r.completion_tokens, 0) }
  }
  const candidates = Array.from({ length: clock[1] - clock[0] + 1 }, (_, i) => recent(clock[0] + i))
  if (!candidates.some((c) => c.rpm === stat.rpm && c.tpm === stat.tpm)) {
    deepStrictEqual({ rpm: stat.rpm, tpm: stat.tpm }, candidates[0], 'rpm and tpm count the last 60 seconds')
  }
}

/** Sends one request and checks its answer against the model; returns the status. */
async function check (world: World, route: RouteName, caller: Caller, query: RawQuery): Promise<number> {
  const before = nowSeconds()
  const res: LightMyRequestResponse = await send(world, route, caller, query)
  const clock: [number, number] = [before, nowSeconds()]
  ok(res.statusCode < 500, `never a 5xx: ${res.statusCode} ${res.body.slice(0, 300)}`)
  const audience = audienceOf(world, route, caller)
  if ('status' in audience) {
    assertRefusal(res, audience.status)
    return res.statusCode
  }
  const bad = invalidParams(route, query)
  if (bad.length > 0) {
    assertRefusal(res, 400, bad)
    return res.statusCode
  }
  const data = successData(res)
  if ('key' in audience) checkToken(world, query, audience.key, data)
  else if (route === 'self' || route === 'admin') checkList(world, route, query, audience, data)
  else if (route === 'selfSearch' || route === 'adminSearch') checkSearch(world, route, query, audience, data)
  else if (route === 'selfStat' || route === 'adminStat') checkStat(world, route, query, audience, data, clock)
  else throw new Error(`a user answered on ${route}`)
  return res.statusCode
}

const ROUTE_NAMES: RouteName[] = ['self', 'selfSearch', 'selfStat', 'token', 'admin', 'adminSearch', 'adminStat']

/** Answers seen, by route and status: printed, and checked to have covered what the properties claim. */
type Tally = Map<string, number>
const count = (tally: Tally, key: string) => tally.set(key, (tally.get(key) ?? 0) + 1)

/** Any route, any caller (right, wrong, missing or disabled credentials), any parameters, some invalid. */
function everyRouteProperty (world: World, tally: Tally) {
  const request = fc.constantFrom(...ROUTE_NAMES).chain((route) => fc.record({
    route: fc.constant(route),
    caller: callerArb(world.users.length, world.keys.length, route),
    filters: filterArb(world, { invalid: true }),
    page: pageArb({ invalid: true }),
    keyword: keywordArb()
  }))
  return fc.asyncProperty(request, async ({ route, caller, filters, page, keyword }) => {
    const status = await check(world, route, caller, { ...filters, ...page, keyword })
    count(tally, `${route} ${status}`)
  })
}

/** The stat routes with an enabled or disabled user's own credentials and valid filters: the sums themselves. */
function statProperty (world: World, tally: Tally) {
  const request = fc.record({
    route: fc.constantFrom<RouteName>('selfStat', 'adminStat'),
    caller: userCaller(world.users.length),
    filters: filterArb(world, { invalid: false })
  })
  return fc.asyncProperty(request, async ({ route, caller, filters }) => {
    const status = await check(world, route, caller, filters)
    count(tally, `${route} ${status}`)
  })
}

async function pendingDeltas (world: World): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int8 as n from logs_stat_delta`.execute(world.app.db)
  return Number(rows[0]!.n)
}

t.test('every audience sees exactly its share of the rows', async (t) => {
  t.comment(`FC_SEED=${seed}`)
  // The fold is ours to run here: first every answer with the deltas pending, then folded.
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0, TOKEN_RATE_LIMIT_MAX: 1_000_000 })
  const world = await buildWorld(app, datasetFor(seed), nowSeconds())
  t.comment(`${world.users.length} users (${world.users.filter((u) => u.status !== 1).length} disabled), ${world.keys.length} keys ` +
    `(${world.keys.filter((k) => !k.usable).length} unusable), ${world.rows.length} rows`)
  const tally: Tally = new Map()

  const phases = [
    { name: 'with the stat deltas not yet folded', seed },
    { name: 'with the stat deltas folded into the rollups', seed: seed + 1 }
  ]
  for (const [i, phase] of phases.entries()) {
    if (i === 1) {
      t.ok(await pendingDeltas(world) > 0, 'the first phase ran with deltas pending')
      while (await foldStatDeltas(app.db) > 0);
      t.equal(await pendingDeltas(world), 0, 'every delta folded')
    }
    await t.test(phase.name, async (t) => {
      // A failing property throws its report (seed, counterexample, diff): tap prints it as the failure.
      await assertProperty(everyRouteProperty(world, tally), { fileSeed: seed, seed: phase.seed, numRuns: runs(250) })
      t.pass('every route, every caller: answers as the model says')
      await assertProperty(statProperty(world, tally), { fileSeed: seed, seed: phase.seed, numRuns: runs(60) })
      t.pass('stats equal the sums over the rows')
    })
  }

  t.comment([...tally.entries()].sort().map(([k, n]) => `${k}: ${n}`).join(', '))
  const seen = (pattern: RegExp) => [...tally.entries()].filter(([k]) => pattern.test(k)).reduce((sum, [, n]) => sum + n, 0)
  // The generators reach what the properties speak of (or a pass would say little).
  for (const route of ROUTE_NAMES) t.ok(seen(new RegExp(`^${route} 200$`)) > 0, `${route} answered 200 at least once`)
  for (const status of [400, 401, 403]) t.ok(seen(new RegExp(` ${status}$`)) > 0, `some request answered ${status}`)
  t.ok(seen(/^(admin|adminSearch|adminStat) 403$/) > 0, 'users were refused on admin routes')
  t.ok(seen(/^token 401$/) > 0, 'unusable or missing keys were refused')
})
