// Lines of an NDJSON body as they arrive, in bounded memory: at most one line (≤ maxLineBytes)
// plus the chunk being read is held, whatever the size of the body.

export class LineError extends Error {
  constructor (readonly line: number, readonly reason: string) {
    super(`line ${line}: ${reason}`)
  }
}

/** The body passed its byte limit; the lines before the one that crossed it were all read. */
export class BodyTooLargeError extends Error {
  constructor (readonly limit: number) {
    super(`the body is larger than ${limit} bytes`)
  }
}

export interface Line {
  /** 1-based, counting blank lines too, so it matches what an editor shows */
  line: number
  text: string
}

const NEWLINE = 0x0a

/**
 * Splits on LF (a CR before it is dropped), decodes each line as strict UTF-8 and skips blank
 * lines. Throws LineError for a line over the limit or with bytes that are not UTF-8, and
 * BodyTooLargeError at the first line that ends past `maxBytes` (0 = no limit).
 */
export async function * ndjsonLines (source: AsyncIterable<Buffer | string>, maxLineBytes: number, maxBytes = 0): AsyncGenerator<Line> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })
  let pending: Buffer[] = []
  let pendingBytes = 0
  let line = 0
  let consumed = 0

  function decode (bytes: Buffer, newline: boolean): Line | undefined {
    line++
    // Counted per line, not per chunk read: where the limit falls does not depend on how the
    // body happened to be split in transit.
    consumed += bytes.length + (newline ? 1 : 0)
    if (maxBytes > 0 && consumed > maxBytes) throw new BodyTooLargeError(maxBytes)
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length
    if (end > maxLineBytes) throw new LineError(line, `longer than ${maxLineBytes} bytes`)
    let text: string
    try {
      text = decoder.decode(bytes.subarray(0, end))
    } catch {
      throw new LineError(line, 'is not valid UTF-8')
    }
    return text.trim() === '' ? undefined : { line, text }
  }

  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    let start = 0
    for (let nl = buf.indexOf(NEWLINE, start); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      const piece = buf.subarray(start, nl)
      const bytes = pendingBytes === 0 ? piece : Buffer.concat([...pending, piece])
      pending = []
      pendingBytes = 0
      start = nl + 1
      const decoded = decode(bytes, true)
      if (decoded !== undefined) yield decoded
    }
    if (start < buf.length) {
      // +1: a CR may still end the line; anything longer cannot fit, whatever comes next.
      pendingBytes += buf.length - start
      if (pendingBytes > maxLineBytes + 1) throw new LineError(line + 1, `longer than ${maxLineBytes} bytes`)
      pending.push(buf.subarray(start))
    }
  }
  if (pendingBytes > 0) {
    const decoded = decode(Buffer.concat(pending), false)
    if (decoded !== undefined) yield decoded
  }
}
