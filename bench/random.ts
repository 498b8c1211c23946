// Small random helpers for the request generators; a seeded generator keeps tests repeatable.

export type Rng = () => number

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function seededRng (seed: number): Rng {
  let a = seed >>> 0
  return function next () {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer in [min, max]. */
export function randInt (rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1))
}

export function pick<T> (rng: Rng, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list')
  return items[Math.floor(rng() * items.length)] as T
}

/** One of the non-empty groups, chosen by weight (empty groups drop out and the rest renormalise). */
export function pickWeighted<T> (rng: Rng, groups: Array<{ weight: number, items: readonly T[] }>): T {
  const live = groups.filter((g) => g.items.length > 0 && g.weight > 0)
  const sum = live.reduce((s, g) => s + g.weight, 0)
  if (live.length === 0) throw new Error('pick from empty groups')
  let r = rng() * sum
  for (const g of live) {
    r -= g.weight
    if (r < 0) return pick(rng, g.items)
  }
  return pick(rng, live[live.length - 1]!.items)
}

/** Up to n distinct items, in random order. */
export function sample<T> (rng: Rng, items: readonly T[], n: number): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    const tmp = copy[i] as T
    copy[i] = copy[j] as T
    copy[j] = tmp
  }
  return copy.slice(0, n)
}
