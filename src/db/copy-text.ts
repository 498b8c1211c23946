// PostgreSQL COPY text format: columns split by tab, rows by newline, backslash escapes.

const SPECIAL = /[\\\t\n\r]/

/** One value for COPY … (format text). NULL (\N) is never written: every logs column is NOT NULL. */
export function escapeCopyText (value: string): string {
  if (!SPECIAL.test(value)) return value
  let out = ''
  for (const ch of value) {
    switch (ch) {
      case '\\': out += '\\\\'; break
      case '\t': out += '\\t'; break
      case '\n': out += '\\n'; break
      case '\r': out += '\\r'; break
      default: out += ch
    }
  }
  return out
}
