import t from 'tap'
import { DAY, HOUR, MINUTE } from '../../src/queries/rollups/model.js'
import { NO_END, planWindow, type WindowPlan } from '../../src/queries/rollups/window.js'

// planWindow is pure: the seconds of a window, split into raw seconds and whole units.

t.test('two grains: minutes and hours', async (t) => {
  t.strictSame(planWindow(3600, 7199, [MINUTE, HOUR]), {
    raw: [{ start: 3600, end: 3599 }, { start: 7200, end: 7199 }],
    units: [{ seconds: HOUR, first: 1, last: 1 }],
    delta: { first: 60, last: 119 }
  }, 'exactly one hour')
  t.strictSame(planWindow(3601, 7300, [MINUTE, HOUR]), {
    raw: [{ start: 3601, end: 3659 }, { start: 7260, end: 7300 }],
    units: [{ seconds: MINUTE, first: 61, last: 120 }],
    delta: { first: 61, last: 120 }
  }, 'no whole hour: minutes and seconds')
  t.strictSame(planWindow(3000, 11_000, [MINUTE, HOUR]), {
    raw: [{ start: 3000, end: 2999 }, { start: 10_980, end: 11_000 }],
    units: [{ seconds: MINUTE, first: 50, last: 59 }, { seconds: MINUTE, first: 180, last: 182 }, { seconds: HOUR, first: 1, last: 2 }],
    delta: { first: 50, last: 182 }
  }, 'minutes on both sides of a whole hour')
  t.strictSame(planWindow(undefined, undefined, [HOUR, DAY]), {
    raw: [{ start: undefined, end: 3599 }],
    units: [{ seconds: HOUR, first: 1, last: 23 }, { seconds: DAY, first: 1, last: NO_END }],
    delta: { first: 60, last: NO_END }
  }, 'no window: hour 0 and before read raw, the rollups to the end')
  t.strictSame(planWindow(5, 50, [MINUTE, HOUR]), { raw: [{ start: 5, end: 50 }], units: [], delta: null }, 'inside unit 0')
  t.strictSame(planWindow(-500, 59, [MINUTE, HOUR]), { raw: [{ start: -500, end: 59 }], units: [], delta: null }, 'negative timestamps are read raw')
})

/** Every second of [start, end] read exactly once: raw seconds, or inside exactly one unit. */
function coverage (plan: WindowPlan, start: number, end: number): string | null {
  const pieces: Array<[number, number]> = plan.raw
    .map((r): [number, number] => [r.start ?? start, r.end ?? end])
    .concat(plan.units.map((u): [number, number] => [u.first * u.seconds, u.last === NO_END ? end : (u.last + 1) * u.seconds - 1]))
    .filter(([a, b]) => a <= b)
    .sort((x, y) => x[0] - y[0])
  let next = start
  for (const [a, b] of pieces) {
    if (a !== next) return `gap or overlap at ${next} (piece starts at ${a})`
    next = b + 1
  }
  return next === end + 1 ? null : `ends at ${next - 1}, not ${end}`
}

t.test('any window on any nesting grains is covered exactly once', async (t) => {
  let seed = 1
  const random = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
  for (const grains of [[MINUTE, HOUR], [HOUR, DAY], [MINUTE, HOUR, DAY], [MINUTE]]) {
    let failures = 0
    for (let i = 0; i < 500; i++) {
      const start = Math.floor(random() * 10 * DAY) - HOUR
      const end = start + Math.floor(random() * (random() < 0.5 ? 2 * HOUR : 5 * DAY))
      const plan = planWindow(start, end, grains)
      const problem = coverage(plan, start, end)
      if (problem !== null) {
        failures++
        t.fail(`${grains.join('/')} [${start}, ${end}]: ${problem}`)
      }
      for (const u of plan.units) if (u.first < 1) t.fail(`unit 0 used for [${start}, ${end}]`)
      if (plan.delta !== null && plan.units.length > 0) {
        const first = Math.min(...plan.units.map((u) => u.first * u.seconds / MINUTE))
        t.equal(plan.delta.first, first, 'the deltas start with the first unit')
      }
    }
    t.equal(failures, 0, `${grains.join('/')}: 500 random windows`)
  }
})

t.test('a coarser grain takes over whole units where it fits', async (t) => {
  const plan = planWindow(HOUR, 3 * DAY + 2 * HOUR - 1, [MINUTE, HOUR, DAY])
  t.strictSame(plan.units, [
    { seconds: HOUR, first: 1, last: 23 },
    { seconds: HOUR, first: 72, last: 73 },
    { seconds: DAY, first: 1, last: 2 }
  ])
})
