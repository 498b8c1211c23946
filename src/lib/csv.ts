// CSV as RFC 4180 writes it (CRLF records, fields quoted only when they must be), made safe to open
// in a spreadsheet: a text cell that would start a formula is prefixed with ' (OWASP's CSV
// injection advice), so `=HYPERLINK(…)` in a log's content shows as text instead of running.

export type CsvValue = string | number | boolean | null | undefined

/** Excel, LibreOffice and Google Sheets start a formula (or DDE) with these; TAB and CR as OWASP lists them. */
export const FORMULA_PREFIXES = ['=', '+', '-', '@', '\t', '\r'] as const

const FORMULA_START = new Set<string>(FORMULA_PREFIXES)
const NEEDS_QUOTES = /[",\r\n]/
const QUOTES = /"/g

/** A text cell that no spreadsheet will evaluate: a leading ' when it starts like a formula. */
export function neutraliseFormula (text: string): string {
  return text.length > 0 && FORMULA_START.has(text[0]!) ? `'${text}` : text
}

/** One field as RFC 4180 writes it: in double quotes, inner quotes doubled, when it holds a quote, a comma, CR or LF. */
export function quoteField (field: string): string {
  return NEEDS_QUOTES.test(field) ? `"${field.replace(QUOTES, '""')}"` : field
}

/**
 * One cell. Only text is neutralised: a number (a negative quota) is written as the number it is,
 * and a spreadsheet reads it as one.
 */
export function csvCell (value: CsvValue): string {
  if (typeof value === 'string') return quoteField(neutraliseFormula(value))
  if (value === null || value === undefined) return ''
  return String(value)
}

/** One record, CRLF-terminated. */
export function csvRecord (values: readonly CsvValue[]): string {
  return values.map(csvCell).join(',') + '\r\n'
}

const LF = 0x0a
const CR = 0x0d
const QUOTE = 0x22

/** CSV records with CRLF ends, how many, and where the last one starts (in the input). */
export interface CrlfRecords {
  text: Buffer
  records: number
  lastRecordStart: number
}

/**
 * LF-terminated CSV records (as PostgreSQL's COPY writes them on every platform) with CRLF ends
 * instead. A line feed inside a quoted field is data and stays as it is. When the text holds as
 * many line feeds as records, every one ends a record and no byte needs reading: memchr finds them.
 */
export function crlfRecords (csv: Buffer, records: number): CrlfRecords {
  const ends: number[] = []
  for (let i = csv.indexOf(LF); i !== -1 && ends.length <= records; i = csv.indexOf(LF, i + 1)) ends.push(i)
  if (ends.length !== records) {
    ends.length = 0
    let quoted = false
    for (let i = 0; i < csv.length; i++) {
      const byte = csv[i]
      if (byte === QUOTE) quoted = !quoted
      else if (byte === LF && !quoted) ends.push(i)
    }
  }
  const text = Buffer.allocUnsafe(csv.length + ends.length)
  let written = 0
  let from = 0
  for (const end of ends) {
    written += csv.copy(text, written, from, end)
    text[written++] = CR
    text[written++] = LF
    from = end + 1
  }
  written += csv.copy(text, written, from)
  return { text: text.subarray(0, written), records: ends.length, lastRecordStart: ends.length < 2 ? 0 : ends[ends.length - 2]! + 1 }
}
