// Property-based, on the data of test/helpers/isolation.ts: keyset pages (cursor, next_cursor) of
// GET /api/log/self and GET /api/log/. A real cursor walks exactly the rows the model lists, page
// after page, and agrees with p paging; a cursor taken from another user's or another filter's
// answer is only a position (the rows after it, of the caller's own scope); a tampered or junk
// cursor is a 400 or, where it still reads as a position, a page of the caller's own rows in order.
// Never a 5xx, never a row of someone else's. The stat fold runs on its timer meanwhile.
//
// A failure prints FC_SEED=<n>: `FC_SEED=<n> npx tap --disable-coverage test/properties/cursors.test.ts`
// replays it (same data, same requests). FC_RUNS=<n> runs every property n times instead.
import t from 'tap'
import fc from 'fast-check'
import { deepStrictEqual, equal, ok } from 'node:assert/strict'
import { buildTestApp } from '../helpers/app.js'
import {
  adminItem, assertFields, assertProperty, assertRefusal, assertScope, buildWorld, datasetFor, filterArb, filterOf, propertySettings,
  select, send, successData, userItem, type Caller, type RawQuery, type Row, type World
} from '../helpers/isolation.js'

const { seed, runs } = propertySettings()

interface Item { id: number, user_id: number, created_at: number, [field: string]: unknown }
interface Page { items: Item[], total: number, total_exact: boolean, next_cursor: string | null }

/** An enabled user (or the admin, users[0]) on their own list, or the admin on the admin list. */
interface Lister {
  user: number
  route: 'self' | 'admin'
}

function listerArb (world: World): fc.Arbitrary<Lister> {
  const enabled = world.users.flatMap((u, i) => u.status === 1 ? [i] : [])
  return fc.oneof(
    fc.constantFrom(...enabled).map((user) => ({ user, route: 'self' as const })),
    fc.constant({ user: 0, route: 'admin' as const })
  )
}

const asCaller = (lister: Lister): Caller => ({ kind: 'user', user: lister.user, tokenForm: 0, idForm: 0 })

/** The rows the lister's query matches, newest first. */
function expectedRows (world: World, lister: Lister, query: RawQuery): Row[] {
  return select(world, filterOf(lister.route, query, { user: world.users[lister.user]! }))
}

async function listPage (world: World, lister: Lister, query: RawQuery, cursor?: string) {
  return await send(world, lister.route, asCaller(lister), query, cursor === undefined ? {} : { cursor })
}

/** A 200 page: the audience's fields, the caller's rows only, the model's total. */
function pageOf (world: World, lister: Lister, res: Awaited<ReturnType<typeof listPage>>, all: Row[]): Page {
  const page = successData(res) as Page
  assertFields(page.items, lister.route === 'admin')
  if (lister.route === 'self') assertScope(world, page.items, { userId: world.users[lister.user]!.id })
  equal(page.total, all.length, 'total counts every matching row, whatever the cursor')
  equal(page.total_exact, true)
  return page
}

const items = (world: World, lister: Lister, rows: Row[]) => rows.map(lister.route === 'admin' ? adminItem : userItem)
const olderThan = (pos: { created_at: number, id: number }) => (r: Row) => r.created_at < pos.created_at || (r.created_at === pos.created_at && r.id < pos.id)

/** Walk with next_cursor from the first page: the pages are the model's rows in order, and p paging agrees. */
function walkProperty (world: World, tally: Map<string, number>) {
  const MAX_PAGES = 12
  const arb = fc.record({
    lister: listerArb(world),
    filters: filterArb(world, { invalid: false }),
    size: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 100 })),
    compare: fc.nat({ max: MAX_PAGES - 1 })
  })
  return fc.asyncProperty(arb, async ({ lister, filters, size, compare }) => {
    const query = { ...filters, page_size: String(size) }
    const all = expectedRows(world, lister, query)
    const walked: Page[] = []
    let cursor: string | undefined
    do {
      const page = pageOf(world, lister, await listPage(world, lister, query, cursor), all)
      const offset = walked.length * size
      deepStrictEqual(page.items, items(world, lister, all.slice(offset, offset + size)), `page ${walked.length + 1} of the walk`)
      if (page.items.length < size) equal(page.next_cursor, null, 'no cursor after a short page')
      // A full page that ends the rows may go either way (the next page is then empty).
      else if (offset + size < all.length) ok(typeof page.next_cursor === 'string' && page.next_cursor.length > 0, 'a cursor while rows remain')
      walked.push(page)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined && walked.length < MAX_PAGES)
    if (cursor === undefined) equal(walked.flatMap((p) => p.items).length, all.length, 'the walk ends with the last row')
    count(tally, cursor === undefined ? 'walked to the end' : 'walk cut short')

    // p paging reads the same rows as the cursor did.
    const k = compare % walked.length
    const byNumber = pageOf(world, lister, await listPage(world, lister, { ...query, p: String(k + 1) }), all)
    deepStrictEqual(byNumber.items, walked[k]!.items, `p=${k + 1} is the walk's page ${k + 1}`)
  })
}

type Tamper = 'real' | 'flip' | 'truncate' | 'append' | 'junk' | 'noise'
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

function tamper (cursor: string, how: Tamper, at: number, junk: string): string {
  const i = at % cursor.length
  switch (how) {
    case 'real': return cursor
    case 'flip': {
      const c = BASE64URL[(BASE64URL.indexOf(cursor[i]!) + 1 + (at % 63)) % 64]!
      return cursor.slice(0, i) + c + cursor.slice(i + 1)
    }
    case 'truncate': return cursor.slice(0, Math.max(1, i))
    case 'append': return cursor + (junk === '' ? 'A' : junk)
    case 'junk': return Buffer.from(junk === '' ? 'x' : junk).toString('base64url')
    case 'noise': return junk === '' ? '!' : junk
  }
}

/**
 * A cursor from one lister's answer (another user's, another filter's, or the caller's own), as
 * is or tampered, in another lister's request.
 */
function foreignCursorProperty (world: World, tally: Map<string, number>) {
  const arb = fc.record({
    source: listerArb(world),
    // Mostly unfiltered first or second pages: full, so with a next_cursor to take.
    sourceFilters: fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: filterArb(world, { invalid: false }) }),
    sourceSize: fc.integer({ min: 1, max: 20 }),
    sourceP: fc.integer({ min: 1, max: 2 }),
    target: listerArb(world),
    sameFilters: fc.boolean(),
    targetFilters: filterArb(world, { invalid: false }),
    size: fc.integer({ min: 1, max: 60 }),
    p: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
    how: fc.constantFrom<Tamper>('real', 'real', 'real', 'flip', 'truncate', 'append', 'junk', 'noise'),
    at: fc.nat(),
    junk: fc.string({ maxLength: 70 })
  })
  return fc.asyncProperty(arb, async (r) => {
    const sourceQuery: RawQuery = { ...r.sourceFilters, page_size: String(r.sourceSize), p: String(r.sourceP) }
    const source = successData(await listPage(world, r.source, sourceQuery)) as Page
    const last = source.items.at(-1)
    const real = source.next_cursor !== null && last !== undefined
    const how: Tamper = real ? r.how : 'junk'
    const cursor = tamper(source.next_cursor ?? '', how, r.at, r.junk)

    const targetQuery = { ...(r.sameFilters ? r.sourceFilters : r.targetFilters), page_size: String(r.size), p: r.p === undefined ? undefined : String(r.p) }
    const all = expectedRows(world, r.target, targetQuery)
    const res = await listPage(world, r.target, targetQuery, cursor)
    ok(res.statusCode < 500, `never a 5xx: ${res.statusCode} ${res.body.slice(0, 200)}`)

    if (how === 'real' || cursor === source.next_cursor) {
      // Only a position: the rows of the caller's own scope and filters after it; p is ignored.
      const page = pageOf(world, r.target, res, all)
      deepStrictEqual(page.items, items(world, r.target, all.filter(olderThan(last!)).slice(0, r.size)), 'the rows after the cursor\'s position')
      count(tally, `real cursor ${r.source.user === r.target.user && r.source.route === r.target.route ? 'own' : 'foreign'}`)
      return
    }
    if (res.statusCode !== 200) {
      assertRefusal(res, 400, ['cursor'])
      count(tally, `${how} 400`)
      return
    }
    // Still read as some position: a run of the caller's rows in order, as long as the page allows.
    const page = pageOf(world, r.target, res, all)
    const want = items(world, r.target, all)
    const start = page.items.length === 0 ? all.length : all.findIndex((row) => row.id === page.items[0]!.id)
    ok(start >= 0, 'the first item is one of the caller\'s matching rows')
    deepStrictEqual(page.items, want.slice(start, start + r.size), 'a contiguous run of the caller\'s rows, newest first')
    count(tally, `${how} 200`)
  })
}

const count = (tally: Map<string, number>, key: string) => tally.set(key, (tally.get(key) ?? 0) + 1)

t.test('keyset pages keep to the caller\'s rows', async (t) => {
  t.comment(`FC_SEED=${seed}`)
  const app = await buildTestApp(t)
  const world = await buildWorld(app, datasetFor(seed), Math.floor(Date.now() / 1000))
  t.comment(`${world.users.length} users, ${world.rows.length} rows`)
  const tally = new Map<string, number>()

  // A failing property throws its report (seed, counterexample, diff): tap prints it as the failure.
  await assertProperty(walkProperty(world, tally), { fileSeed: seed, seed, numRuns: runs(50) })
  t.pass('a cursor walk lists the model\'s rows page by page, as p paging does')
  await assertProperty(foreignCursorProperty(world, tally), { fileSeed: seed, seed, numRuns: runs(200) })
  t.pass('foreign and tampered cursors stay in the caller\'s scope')

  t.comment([...tally.entries()].sort().map(([k, n]) => `${k}: ${n}`).join(', '))
  for (const key of ['walked to the end', 'real cursor own', 'real cursor foreign']) t.ok((tally.get(key) ?? 0) > 0, `seen: ${key}`)
  t.ok([...tally.keys()].some((k) => / 400$/.test(k)), 'some tampered cursor was refused')
})
