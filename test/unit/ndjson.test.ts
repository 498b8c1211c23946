import t from 'tap'
import { BodyTooLargeError, LineError, ndjsonLines, type Line } from '../../src/lib/ndjson.js'

// The NDJSON splitter: lines whatever the chunking, numbered as an editor shows them, bounded.

async function collect (chunks: Array<string | Buffer>, maxLine = 100, maxBytes = 0): Promise<Line[]> {
  const out: Line[] = []
  for await (const line of ndjsonLines((async function * () { yield * chunks })(), maxLine, maxBytes)) out.push(line)
  return out
}

async function failure (chunks: Array<string | Buffer>, maxLine = 100, maxBytes = 0): Promise<unknown> {
  try {
    await collect(chunks, maxLine, maxBytes)
  } catch (err) {
    return err
  }
  return undefined
}

t.test('lines whatever the chunking', async (t) => {
  const text = '{"a":1}\r\n\n  \n{"b":"龘"}\n{"c":3}'
  const expected = [{ line: 1, text: '{"a":1}' }, { line: 4, text: '{"b":"龘"}' }, { line: 5, text: '{"c":3}' }]
  t.strictSame(await collect([text]), expected, 'one chunk; CRLF, blank lines skipped but counted, no final newline')
  const bytes = Buffer.from(text)
  for (let cut = 1; cut < bytes.length; cut++) {
    t.strictSame(await collect([bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `split at byte ${cut} (inside 龘 too)`)
  }
  t.strictSame(await collect([...bytes].map((b) => Buffer.from([b]))), expected, 'byte by byte')
})

t.test('limits and bad bytes', async (t) => {
  const long = await failure(['{"a":1}\n', 'x'.repeat(60), 'y'.repeat(60), '\n'], 100)
  t.ok(long instanceof LineError, 'a line over the limit, even split across chunks')
  t.match(long, { line: 2, reason: 'longer than 100 bytes' })
  t.strictSame(await collect(['x'.repeat(100) + '\r\n']), [{ line: 1, text: 'x'.repeat(100) }], 'exactly the limit, CR not counted')
  t.match(await failure([Buffer.from([0x7b, 0xc3, 0x28, 0x7d, 0x0a])]), { line: 1, reason: 'is not valid UTF-8' })

  const tooLarge = await failure(['{"a":1}\n{"b":2}\n{"c":3}\n'], 100, 17)
  t.ok(tooLarge instanceof BodyTooLargeError, 'the third line ends past 17 bytes')
  t.strictSame(await collect(['{"a":1}\n{"b":2}\n'], 100, 16), [{ line: 1, text: '{"a":1}' }, { line: 2, text: '{"b":2}' }], 'exactly the limit is fine')
  t.ok(await failure(['{"a":1}\n{"b":2}\n'], 100, 15) instanceof BodyTooLargeError, 'one byte over is not')
  t.ok(await failure(['{"a":1}\n{"b":2}'], 100, 14) instanceof BodyTooLargeError, 'nor a last line without its newline')
})
