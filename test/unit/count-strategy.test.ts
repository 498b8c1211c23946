import t from 'tap'
import { chooseCountStrategy, chooseListPlan, COUNT_LIMITS, extrapolate, pageShapeAfterCount, type CountLimits } from '../../src/queries/logs/count-strategy.js'

// The count strategy is a pure decision: plain values in, a name out, no database.

t.test('chooseListPlan', async (t) => {
  t.equal(chooseListPlan({}), 'rollup-page', 'no filter')
  t.equal(chooseListPlan({ userId: 1, startTimestamp: 5, endTimestamp: 9 }), 'rollup-page', 'a user and a window')
  t.equal(chooseListPlan({ userId: 1, type: 0, channel: 0, modelName: '' }), 'rollup-page', '0 and empty strings are no filter')
  t.equal(chooseListPlan({ tokenId: 3 }), 'page-and-count', 'a key: the rollups do not hold keys')
  t.equal(chooseListPlan({ userId: 1, type: 2 }), 'page-and-count', 'a type')
  t.equal(chooseListPlan({ modelName: 'm' }), 'page-and-count', 'one GIN column')
  t.equal(chooseListPlan({ userId: 1, modelName: 'm' }), 'probe-first', 'a user and a model: two GIN columns')
  t.equal(chooseListPlan({ channel: 5, modelName: 'm', type: 2 }), 'probe-first', 'a channel and a model')
  t.equal(chooseListPlan({ requestId: 'r', type: 2 }), 'page-and-count', 'request id and type are not in the GIN index')
})

t.test('chooseCountStrategy', async (t) => {
  const L = COUNT_LIMITS
  t.equal(chooseCountStrategy({ seen: 10, hits: 3 }, 10, true), 'probe-exact', 'the probe read the whole scope')
  t.equal(chooseCountStrategy({ seen: L.probeRows - 1, hits: 0 }, L.probeRows - 1, false), 'probe-exact', 'one row short of the probe')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: L.probeRows / 2 }, 1_000_000, false), 'extrapolate', 'half of a million rows')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: L.probeRows / 2 }, 1_000_000, true), 'extrapolate', 'for a user too')
  const border = { seen: L.probeRows, hits: L.probeRows / 100 }
  t.equal(chooseCountStrategy(border, 2 * L.exactCountLimit * 100, false), 'gin-count', 'exactly twice the exact limit is still counted')
  t.equal(chooseCountStrategy(border, 2 * L.exactCountLimit * 100 + 100, false), 'extrapolate', 'past twice the exact limit')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: 0 }, 50_000, true), 'user-walk', 'a user of 50,000 rows, no match in the probe')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: 0 }, 50_000, false), 'gin-count', 'the same without a user: nothing to walk')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: 0 }, 5_000_000, true), 'gin-count', 'a user too large to walk')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: 100 }, 5_000_000, true), 'extrapolate', '5 % of five million rows')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: 3 }, 5_000_000, true), 'gin-count', 'sparse in a large scope: the walk would read millions of entries')
  t.equal(chooseCountStrategy({ seen: L.probeRows, hits: 500 }, 80_000, true), 'user-walk', 'a walk that counts past the limit within the budget')
})

t.test('limits are options', async (t) => {
  const small: CountLimits = { exactCountLimit: 10, bitmapPageLimit: 3, walkCountBudget: 50, probeRows: 4 }
  t.equal(chooseCountStrategy({ seen: 3, hits: 1 }, 3, false, small), 'probe-exact')
  t.equal(chooseCountStrategy({ seen: 4, hits: 4 }, 100, false, small), 'extrapolate')
  t.equal(chooseCountStrategy({ seen: 4, hits: 0 }, 40, true, small), 'user-walk')
  t.equal(chooseCountStrategy({ seen: 4, hits: 0 }, 400, false, small), 'gin-count')
  t.equal(chooseCountStrategy({ seen: 4, hits: 0 }, 400, true, { ...small, walkCountBudget: 40 }), 'gin-count')
  t.equal(pageShapeAfterCount(3, small), 'bitmap')
  t.equal(pageShapeAfterCount(4, small), 'walk')
  t.equal(pageShapeAfterCount(COUNT_LIMITS.bitmapPageLimit), 'bitmap')
  t.equal(pageShapeAfterCount(COUNT_LIMITS.bitmapPageLimit + 1), 'walk')
})

t.test('extrapolate', async (t) => {
  t.equal(extrapolate({ seen: 2000, hits: 500 }, 1_000_000), 250_000)
  t.equal(extrapolate({ seen: 0, hits: 0 }, 1_000_000), 0)
})
