// A strict query-string parser. Fastify's default decoder lets invalid percent-encoding through
// unchanged and turns %00 into a NUL byte that PostgreSQL then rejects with a 500; here both are
// recorded per parameter so that a hook can answer 400 naming the parameter (the parser itself
// runs inside the router, where throwing would not reach the error handler).

export const INVALID_PARAM = Symbol('invalidQueryParameter')

export interface ParsedQuery {
  [key: string]: string | string[]
  [INVALID_PARAM]?: { name: string, reason: string }
}

function decode (part: string): string {
  return decodeURIComponent(part.includes('+') ? part.replace(/\+/g, ' ') : part)
}

export function parseQueryString (input: string): ParsedQuery {
  const out: ParsedQuery = Object.create(null)
  if (input.length === 0) return out
  for (const pair of input.split('&')) {
    if (pair.length === 0) continue
    const eq = pair.indexOf('=')
    const rawName = eq === -1 ? pair : pair.slice(0, eq)
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1)
    let name: string
    let value: string
    try {
      name = decode(rawName)
    } catch {
      out[INVALID_PARAM] ??= { name: rawName.slice(0, 64), reason: 'is not valid UTF-8 percent-encoding' }
      continue
    }
    try {
      value = decode(rawValue)
    } catch {
      out[INVALID_PARAM] ??= { name, reason: 'is not valid UTF-8 percent-encoding' }
      continue
    }
    if (name.includes('\0') || value.includes('\0')) {
      out[INVALID_PARAM] ??= { name: name.replace(/\0/g, '\\0'), reason: 'must not contain NUL bytes' }
      continue
    }
    // `channel=` or `page_size=` (as gateway frontends send for an unset field) means absent,
    // as in new-api, where an empty value is "no filter" or the default.
    if (value === '') continue
    const existing = out[name]
    if (existing === undefined) out[name] = value
    else if (Array.isArray(existing)) existing.push(value)
    else out[name] = [existing, value]
  }
  return out
}
