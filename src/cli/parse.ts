import { InvalidArgumentError } from 'commander'
import { Role } from '../domain.js'

// Parsers for the CLI's arguments. Each throws commander's InvalidArgumentError, which the program
// reports naming the option and exits 2 (bad usage).

/** A whole number within [min, max]. */
export function integerIn (min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^-?[0-9]+$/.test(value)) throw new InvalidArgumentError('not an integer.')
    const n = Number(value)
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}.`)
    return n
  }
}

export const positiveInteger = integerIn(1)

/** The largest id of a serial (int4) column. */
export const MAX_ID = 2_147_483_647

export const idArgument = integerIn(1, MAX_ID)

export function finiteNumber (value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('not a number.')
  return n
}

const ISO = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$/i

/**
 * Unix seconds, or an ISO date (`2026-01-31`, midnight UTC) or date-time (`2026-01-31T12:00`,
 * UTC unless it carries an offset such as `+08:00`). Impossible dates (Feb 30, hour 24) are
 * refused: Date.parse would roll them over into the next month or day.
 */
export function parseTime (value: string): number {
  if (/^[0-9]+$/.test(value)) {
    const n = Number(value)
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('not a valid unix timestamp.')
    return n
  }
  const m = ISO.exec(value.trim())
  if (m === null) throw new InvalidArgumentError('not a date: use unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM].')
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((part) => Number(part ?? 0)) as [number, number, number, number, number, number]
  const ms = Date.UTC(y, mo - 1, d, h, mi, s)
  const back = new Date(ms)
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h || back.getUTCMinutes() !== mi) {
    throw new InvalidArgumentError('not a valid calendar date or time.')
  }
  const seconds = ms / 1000 - offsetSeconds(m[7])
  if (seconds < 0) throw new InvalidArgumentError('before 1970.')
  return seconds
}

function offsetSeconds (zone: string | undefined): number {
  if (zone === undefined || zone.toUpperCase() === 'Z') return 0
  const digits = zone.slice(1).replace(':', '')
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))
  return (zone.startsWith('-') ? -1 : 1) * minutes * 60
}

const ROLE_NAMES: Record<string, number> = { user: Role.user, common: Role.user, admin: Role.admin, root: Role.root }

/** A role by name (user, admin, root) or by the contract's number (1, 10, 100). */
export function parseRole (value: string): number {
  const v = value.trim().toLowerCase()
  const byName = ROLE_NAMES[v]
  if (byName !== undefined) return byName
  const n = Number(v)
  if (/^[0-9]+$/.test(v) && (Object.values(Role) as number[]).includes(n)) return n
  throw new InvalidArgumentError(`unknown role: use user, admin or root (or ${Object.values(Role).join(', ')}).`)
}

/** `10 (admin)`: the number the contract stores, with its name. */
export function roleLabel (role: number): string {
  const name = Object.entries(Role).find(([, n]) => n === role)?.[0]
  return name === undefined ? String(role) : `${role} (${name})`
}

/** A user argument: all digits is an id, anything else a username. */
export function parseUserRef (value: string): { id: number } | { username: string } {
  if (value === '') throw new InvalidArgumentError('empty user.')
  return /^[0-9]+$/.test(value) ? { id: integerIn(1, MAX_ID)(value) } : { username: value }
}
