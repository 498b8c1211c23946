// Checks that must answer in bounded time against a database that may hang: readiness, and the
// gauges a scrape reads from the database.

/**
 * `work` with at most one run in flight: a caller that arrives meanwhile gets the running one's
 * promise. Against a database that hangs, probes then wait on one connection attempt instead of
 * piling up one each.
 */
export function singleFlight<T> (work: () => Promise<T>): () => Promise<T> {
  let current: Promise<T> | null = null
  return () => {
    current ??= work().finally(() => { current = null })
    return current
  }
}

export const TIMED_OUT = Symbol('timed out')

/**
 * The promise's value, or TIMED_OUT once `ms` have passed, whichever comes first. The promise is
 * not cancelled (it runs on, and a later rejection is handled), so pair it with singleFlight.
 */
export async function withDeadline<T> (promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => { timer = setTimeout(resolve, ms, TIMED_OUT) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}
