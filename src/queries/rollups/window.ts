import { DELTA_SECONDS, FIRST_UNIT } from './model.js'

// How a window [start, end] of unix seconds (either side open) splits for the rollups. Pure: no
// database, unit-tested on its own (test/unit/window.test.ts).

/** An open end: the rollups run to the last unit there is. */
export const NO_END = Number.MAX_SAFE_INTEGER

export interface UnitRange { first: number, last: number }

/** Whole units of the grain of `seconds`. */
export interface GrainRange extends UnitRange { seconds: number }

export interface WindowPlan {
  /** read from logs: the seconds before the first whole unit of the finest grain, and after the last */
  raw: Array<{ start?: number, end?: number }>
  /** the whole units of each grain, coarsest wherever they fit; finest first */
  units: GrainRange[]
  /** the delta minutes the units cover (pending deltas are added to the rollups') */
  delta: UnitRange | null
}

/**
 * Splits a window over a scope's grains (seconds, finest first, each a multiple of the one before):
 * the coarsest whole units inside it, finer ones beside them at either end, and the seconds left
 * over. Unit 0 is never used, so rows before the first unit of the finest grain are read raw.
 * With no end, the rollups run to the last unit there is and nothing is read after them. When an
 * end is given, both raw ranges are always there (an empty one costs an index probe) so that the
 * statement's shape, and so its prepared text, depends less on where the window falls.
 */
export function planWindow (start: number | undefined, end: number | undefined, grains: readonly number[]): WindowPlan {
  const fine = grains[0]
  if (fine === undefined) throw new Error('planWindow needs at least one grain')
  const f1 = Math.max(FIRST_UNIT, start === undefined ? FIRST_UNIT : Math.ceil(start / fine))
  const f2 = end === undefined ? NO_END : Math.floor((end + 1) / fine) - 1
  if (f1 > f2) return { raw: [{ start, end }], units: [], delta: null }

  const raw: WindowPlan['raw'] = [{ start, end: f1 * fine - 1 }]
  if (end !== undefined) raw.push({ start: (f2 + 1) * fine, end })
  const to = f2 === NO_END ? NO_END : (f2 + 1) * fine
  const minutes = fine / DELTA_SECONDS
  return {
    raw,
    units: wholeUnits(f1 * fine, to, grains),
    delta: { first: f1 * minutes, last: f2 === NO_END ? NO_END : (f2 + 1) * minutes - 1 }
  }
}

/** [from, to) seconds, both on the finest grain, as whole units: coarsest first, finer grains filling the gaps. */
function wholeUnits (from: number, to: number, grains: readonly number[]): GrainRange[] {
  const out: GrainRange[] = []
  let gaps: Array<[number, number]> = [[from, to]]
  for (let i = grains.length - 1; i >= 0; i--) {
    const seconds = grains[i]!
    const left: Array<[number, number]> = []
    for (const [a, b] of gaps) {
      const first = Math.ceil(a / seconds)
      const last = b === NO_END ? NO_END : Math.floor(b / seconds) - 1
      if (first > last) {
        left.push([a, b])
        continue
      }
      out.push({ seconds, first, last })
      if (a < first * seconds) left.push([a, first * seconds])
      if (last !== NO_END && (last + 1) * seconds < b) left.push([(last + 1) * seconds, b])
    }
    gaps = left
  }
  return out.sort((x, y) => x.seconds - y.seconds || x.first - y.first)
}
