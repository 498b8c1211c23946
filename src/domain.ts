// The numbers the contract gives names to (shared/spec/log-api.md), declared once: auth, queries,
// schemas and the seed all read them from here.

export const Role = { user: 1, admin: 10, root: 100 } as const

export const UserStatus = { enabled: 1, disabled: 2 } as const

/** A key that is disabled cannot read its logs; expired and exhausted keys still see their history. */
export const TokenStatus = { enabled: 1, disabled: 2, expired: 3, exhausted: 4 } as const

/**
 * Log types as the contract (and the seed's API description) numbers them. new-api itself numbers
 * 4 system and 5 error and later added 6 refund and 7 login: any of 0..7 is stored and filtered.
 */
export const LogType = { topUp: 1, consume: 2, manage: 3, error: 4, system: 5 } as const

export const LOG_TYPE_MIN = 0
export const LOG_TYPE_MAX = 7

/** The type a stat reports when none is asked for: what a dashboard shows (consumption). */
export const DEFAULT_STAT_TYPE = LogType.consume

/** `1 top-up, 2 consume, …`, for descriptions. */
export function describeLogTypes (): string {
  const names: Record<keyof typeof LogType, string> = { topUp: 'top-up', consume: 'consume', manage: 'manage', error: 'error', system: 'system' }
  return Object.entries(LogType).map(([key, n]) => `${n} ${names[key as keyof typeof LogType]}`).join(', ')
}
