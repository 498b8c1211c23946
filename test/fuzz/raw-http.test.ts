// Malformed HTTP on a real socket (app.listen on 127.0.0.1, port 0): bad request lines, bad header
// bytes, Content-Length beside chunked, no Host, truncated bodies, huge headers, pipelined garbage.
// Every answer is a 2xx (where the request may be valid) or a 4xx in the error envelope, never a
// 5xx; no row changes; the server still answers a normal request afterwards.
//
// Where HTTP allows no answer at all, none is required:
// - the client ended the connection before a whole request was sent (a truncated request line,
//   headers or body): Node's parser sees the end of the stream mid-message and there is no
//   request to answer (the bytes so far may still draw a 400 for what they already break);
// - after a request the parser rejects, the connection is closed: whatever was pipelined behind
//   it gets no answer, as the parser cannot find where the next request would start.
import { connect, type AddressInfo } from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { answerProblem, holds, listRoutes, seedWorld, tableChecksums, fuzzSettings, type Answer, type FuzzWorld } from '../helpers/fuzz.js'

const settings = fuzzSettings(150)

/**
 * Sends `bytes` and reads until the server closes the connection, or has been quiet for `quietMs`
 * after answering (a kept-alive connection), or sent nothing for `idleMs` (5 s). `halfClose` ends
 * our side after the bytes: for Node's server that is a client gone (it drops what it had not
 * answered yet), so only truncated requests, whose client gave up, are sent that way.
 */
async function exchange (port: number, bytes: Buffer, opts: { halfClose?: boolean, quietMs?: number, idleMs?: number } = {}): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let quiet: NodeJS.Timeout | undefined
    const done = () => {
      clearTimeout(quiet)
      socket.destroy()
      resolve(Buffer.concat(chunks))
    }
    socket.setTimeout(opts.idleMs ?? 5000, done)
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      clearTimeout(quiet)
      if (opts.quietMs !== undefined) quiet = setTimeout(done, opts.quietMs)
    })
    socket.on('close', done)
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The server may reset a connection it refused while we were still writing to it.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') done()
      else reject(err)
    })
    if (opts.halfClose === true) socket.end(bytes)
    else socket.write(bytes)
  })
}

/** The responses in what the server sent, in order (1xx interim answers left out). */
function responses (data: Buffer): { answers: Answer[], trailing: string } {
  const answers: Answer[] = []
  let rest = data
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) break
    const head = rest.subarray(0, end).toString('latin1')
    const status = /^HTTP\/1\.[01] ([0-9]{3})/.exec(head)
    if (status === null) break
    const headers: Record<string, string> = {}
    for (const line of head.split('\r\n').slice(1)) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    rest = rest.subarray(end + 4)
    let body: Buffer
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = []
      for (;;) {
        const lineEnd = rest.indexOf('\r\n')
        const size = lineEnd === -1 ? NaN : parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16)
        if (Number.isNaN(size)) break
        parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
        rest = rest.subarray(lineEnd + 2 + size + 2)
        if (size === 0) break
      }
      body = Buffer.concat(parts)
    } else {
      const length = Number(headers['content-length'] ?? rest.length)
      body = rest.subarray(0, length)
      rest = rest.subarray(length)
    }
    const code = Number(status[1])
    if (code >= 100 && code < 200) continue
    answers.push({ statusCode: code, headers, body: body.toString('utf8') })
  }
  return { answers, trailing: rest.toString('latin1') }
}

// ---------- the pieces of a request ----------

const bytesOf = (s: string) => Buffer.from(s, 'latin1')
const latin1 = (min: number, max: number) => fc.integer({ min, max }).map((c) => String.fromCharCode(c))

const methodArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'GET', 'POST', 'DELETE', 'OPTIONS') },
  { weight: 1, arbitrary: fc.constantFrom('get', 'PUT', 'PATCH', 'TRACE', 'CONNECT', 'PROPFIND', 'FOO', 'G ET', 'GET\t', '', 'GETT', 'M-SEARCH', 'PRI') },
  { weight: 1, arbitrary: fc.string({ unit: latin1(0, 255), minLength: 1, maxLength: 8 }) }
)

const versionArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant('HTTP/1.1') },
  { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.2', 'http/1.1', 'HTTP/1.1 x', 'HTTP/11', '', 'HTTP/1.1\u0000') }
)

interface RawHeader { name: string, value: string }

function headerArb (world: FuzzWorld): fc.Arbitrary<RawHeader> {
  const name = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('Authorization', 'New-Api-User', 'Content-Type', 'Accept', 'Origin', 'Access-Control-Request-Method', 'X-Forwarded-For', 'Expect', 'Connection', 'Upgrade', 'Cookie', 'X-Request-Id', 'Content-Encoding', 'Trailer') },
    { weight: 1, arbitrary: fc.constantFrom('', ' Host', 'Host ', 'X A', 'X\u0000A', 'X:A', 'X\u00ffA', '\tX') },
    { weight: 1, arbitrary: fc.string({ unit: latin1(0x21, 0x7e), minLength: 1, maxLength: 12 }) }
  )
  const value = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(world.admin.headers.authorization, String(world.admin.id), `Bearer sk-${world.apiKey}`, 'application/json', 'application/x-ndjson', 'text/plain', 'https://a.example', 'GET', '100-continue', 'foo', 'close', 'keep-alive', 'Upgrade', 'websocket', 'h2c', 'gzip', '1.2.3.4') },
    { weight: 2, arbitrary: fc.string({ unit: latin1(0, 255), maxLength: 40 }) },
    { weight: 1, arbitrary: fc.constantFrom('a\u0000b', 'a\rb', 'a\nb', 'a\r\n b', '\u00ff\u00fe', ' ', '') },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', ' ', '\u00e9'), fc.integer({ min: 1, max: 20_000 })).map(([c, n]) => c.repeat(n)) }
  )
  return fc.record({ name, value })
}

type Framing = 'none' | 'length' | 'chunked' | 'both' | 'two-lengths' | 'bad-length' | 'bad-chunks' | 'truncated'

interface RawRequest {
  method: string
  target: string
  version: string
  host: 'ok' | 'missing' | 'twice' | 'empty' | 'garbage'
  headers: RawHeader[]
  framing: Framing
  body: string
  lineEnd: '\r\n' | '\n' | '\r'
  /** cut the bytes here (a truncated request), or keep them all */
  cut: number | null
}

/** The request's bytes, and whether it is a whole, well-formed request the app may answer 2xx. */
function render (r: RawRequest, port: number): { bytes: Buffer, whole: boolean } {
  const eol = r.lineEnd
  const lines = [`${r.method} ${r.target} ${r.version}`.trimEnd()]
  const host = `Host: 127.0.0.1:${port}`
  if (r.host === 'ok') lines.push(host)
  if (r.host === 'twice') lines.push(host, 'Host: other.example')
  if (r.host === 'empty') lines.push('Host:')
  if (r.host === 'garbage') lines.push('Host: a b\u00ff')
  for (const h of r.headers) lines.push(`${h.name}: ${h.value}`)
  // The server closes once it has answered (unless the fuzz sent its own Connection header).
  if (!r.headers.some((h) => h.name.toLowerCase() === 'connection')) lines.push('Connection: close')
  const body = r.body
  const length = Buffer.byteLength(body, 'latin1')
  let payload = ''
  switch (r.framing) {
    case 'none': break
    case 'length': lines.push(`Content-Length: ${length}`); payload = body; break
    case 'chunked': lines.push('Transfer-Encoding: chunked'); payload = `${length.toString(16)}\r\n${body}\r\n0\r\n\r\n`; break
    case 'both': lines.push(`Content-Length: ${length}`, 'Transfer-Encoding: chunked'); payload = `${length.toString(16)}\r\n${body}\r\n0\r\n\r\n`; break
    case 'two-lengths': lines.push(`Content-Length: ${length}`, `Content-Length: ${length + 1}`); payload = body; break
    case 'bad-length': lines.push('Content-Length: -1, 5, 0x10, 1e3'.split(', ')[length % 4]!); payload = body; break
    case 'bad-chunks': lines.push('Transfer-Encoding: chunked'); payload = `zz\r\n${body}\r\n`; break
    case 'truncated': lines.push(`Content-Length: ${length + 100}`); payload = body; break
  }
  let bytes = bytesOf(lines.join(eol) + eol + eol + payload)
  if (r.cut !== null) bytes = bytes.subarray(0, Math.min(r.cut, bytes.length - 1))
  const whole = r.cut === null && r.framing !== 'truncated'
  return { bytes, whole }
}

t.test('malformed HTTP on a real socket', async (t) => {
  const app = await buildTestApp(t, { STAT_FOLD_INTERVAL_MS: 0, TOKEN_RATE_LIMIT_MAX: 1_000_000 })
  const world = await seedWorld(app)
  const routes = await listRoutes(app)
  const before = await tableChecksums(app.db)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo

  // Paths of every route, with the rows' purge made harmless by the seeded timestamps (helpers/fuzz.ts).
  const paths = routes.map((r) => r.path.replace(/\*$/, ''))
  const targetArb = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...paths), fc.constantFrom('', '?keyword=plain', '?target_timestamp=1', '?p=2&page_size=1', '?type=%00', '?x=%FF', '?a=1&a=2')).map(([p, q]) => p + q) },
    { weight: 1, arbitrary: fc.constantFrom('*', '', '/\\', '//', 'http://127.0.0.1/healthz', 'healthz', '/%', '/%00', '/a b', '/\u00ff', '/\u0000', '/\u0001', '/api/log/self?\u0000', '/#x', '/healthz?' + 'a'.repeat(17_000)) },
    { weight: 1, arbitrary: fc.string({ unit: latin1(0, 255), maxLength: 30 }).map((s) => `/${s}`) }
  )
  const requestArb: fc.Arbitrary<RawRequest> = fc.record({
    method: methodArb,
    target: targetArb,
    version: versionArb,
    host: fc.oneof({ weight: 8, arbitrary: fc.constant('ok' as const) }, { weight: 1, arbitrary: fc.constantFrom('missing' as const, 'twice' as const, 'empty' as const, 'garbage' as const) }),
    headers: fc.array(headerArb(world), { maxLength: 4 }),
    framing: fc.oneof({ weight: 3, arbitrary: fc.constantFrom<Framing>('none', 'length') }, { weight: 2, arbitrary: fc.constantFrom<Framing>('chunked', 'both', 'two-lengths', 'bad-length', 'bad-chunks', 'truncated') }),
    body: fc.oneof(fc.constantFrom('', '[]', '{}', '[{"user_id":', 'key=1', '{"a":1}\n{"b":2}\n'), fc.string({ unit: latin1(0, 255), maxLength: 50 })),
    lineEnd: fc.oneof({ weight: 8, arbitrary: fc.constant('\r\n' as const) }, { weight: 1, arbitrary: fc.constantFrom('\n' as const, '\r' as const) }),
    cut: fc.option(fc.nat({ max: 400 }), { nil: null, freq: 6 })
  })

  t.test('one request at a time: a 2xx or the envelope, never a 5xx, and an answer to every whole request', async (t) => {
    let answered = 0
    const property = fc.asyncProperty(requestArb, async (r) => {
      const { bytes, whole } = render(r, port)
      const { answers, trailing } = responses(await exchange(port, bytes, { halfClose: !whole, quietMs: 1000 }))
      const label = JSON.stringify(bytes.toString('latin1').slice(0, 400))
      for (const answer of answers) {
        // /docs answers its index with a redirect.
        const problem = answerProblem(answer, { method: r.method, mayBeValid: true, allowRedirect: r.target.startsWith('/docs') })
        if (problem !== undefined) throw new Error(`${label}: ${problem}`)
      }
      if (trailing !== '') throw new Error(`${label}: bytes that are no HTTP response: ${JSON.stringify(trailing.slice(0, 200))}`)
      // A whole request with a method and version the parser knows is answered, whatever else it breaks.
      if (whole && answers.length === 0 && r.method !== 'CONNECT' && r.lineEnd === '\r\n') throw new Error(`${label}: no answer`)
      answered += answers.length
    })
    await holds(t, 'every answer is a 2xx or the envelope', property, settings)
    t.ok(answered > 0, `${answered} answers read`)
  })

  t.test('pipelined requests, then garbage: each request answered in order, the garbage a 400 or nothing', async (t) => {
    const valid = [
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      `GET /api/log/?page_size=1 HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin.headers.authorization}\r\nNew-Api-User: ${world.admin.id}\r\n\r\n`,
      `DELETE /api/log/?target_timestamp=${Number.MAX_SAFE_INTEGER} HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin.headers.authorization}\r\nNew-Api-User: ${world.admin.id}\r\n\r\n`,
      `POST /api/log/ HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.admin.headers.authorization}\r\nNew-Api-User: ${world.admin.id}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]`,
      `GET /api/log/self/search?keyword=plain HTTP/1.1\r\nHost: x\r\nAuthorization: ${world.user.headers.authorization}\r\nNew-Api-User: ${world.user.id}\r\n\r\n`
    ]
    const property = fc.asyncProperty(
      fc.array(fc.constantFrom(...valid.keys()), { minLength: 1, maxLength: 4 }),
      fc.oneof(fc.constantFrom('', 'garbage\r\n\r\n', '\r\n\r\n\r\n', 'GET / HTTP/1.1\r\n', 'GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'), fc.string({ unit: latin1(0, 255), maxLength: 60 })),
      async (picked, garbage) => {
        const requests = picked.map((i) => valid[i]!)
        // The last request closes the connection once answered, unless the garbage makes the parser close it first.
        requests[requests.length - 1] = requests.at(-1)!.replace('Host: x\r\n', 'Host: x\r\nConnection: close\r\n')
        // The last request asks for the close: waiting long for it costs nothing on a quiet
        // machine, and on a loaded one a purge among the requests may take seconds.
        const data = await exchange(port, bytesOf(requests.join('') + garbage), { idleMs: 30_000 })
        const { answers } = responses(data)
        const label = `${picked.join(',')} then ${JSON.stringify(garbage)}`
        if (answers.length < picked.length) throw new Error(`${label}: ${answers.length} answers to ${picked.length} requests`)
        for (const [n, i] of picked.entries()) {
          const answer = answers[n]!
          // The POST sends an empty batch (400 by the contract); pipelined requests run at once, so a
          // purge behind another finds it running (409); every other request is well formed.
          const want = i === 3 ? [400] : i === 2 ? [200, 409] : [200]
          if (!want.includes(answer.statusCode)) throw new Error(`${label}: request ${n} answered ${answer.statusCode}, not ${want.join(' or ')}: ${answer.body.slice(0, 200)}`)
          if (i === 2 && answer.statusCode === 200 && JSON.parse(answer.body).data !== 0) throw new Error(`${label}: the purge deleted rows`)
        }
        for (const answer of answers.slice(picked.length)) {
          const problem = answerProblem(answer, { method: 'GET', mayBeValid: true })
          if (problem !== undefined) throw new Error(`${label}: after the requests: ${problem}`)
        }
      })
    await holds(t, 'pipelined requests are answered in order', property, settings)
  })

  t.test('headers around the 16 KB limit: a 2xx below it, a 431 envelope above it', async (t) => {
    const property = fc.asyncProperty(fc.integer({ min: 15_800, max: 16_600 }), fc.integer({ min: 1, max: 8 }), async (size, count) => {
      const each = Math.floor(size / count)
      const headers = Array.from({ length: count }, (_, i) => `X-Pad-${i}: ${'a'.repeat(Math.max(1, each - 12))}\r\n`).join('')
      const request = `GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`
      const { answers } = responses(await exchange(port, bytesOf(request)))
      const label = `${Buffer.byteLength(request)} bytes of head in ${count} padding headers`
      const answer = answers[0]
      if (answer === undefined) throw new Error(`${label}: no answer`)
      if (answer.statusCode !== 200 && answer.statusCode !== 431) throw new Error(`${label}: ${answer.statusCode}`)
      const problem = answerProblem(answer, { method: 'GET', mayBeValid: true })
      if (problem !== undefined) throw new Error(`${label}: ${problem}`)
      if (Buffer.byteLength(request) > 16 * 1024 + 100 && answer.statusCode !== 431) throw new Error(`${label}: over the limit, yet ${answer.statusCode}`)
    })
    await holds(t, 'the head limit answers 431 in the envelope', property, { ...settings, runs: Math.max(1, Math.floor(settings.runs / 5)) })
  })

  t.test('no row of any table changed', async (t) => {
    t.strictSame(await tableChecksums(app.db), before)
  })

  t.test('the server still answers a normal request', async (t) => {
    const { answers } = responses(await exchange(port, bytesOf('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')))
    t.equal(answers.length, 1)
    t.equal(answers[0]?.statusCode, 200)
    t.strictSame(JSON.parse(answers[0]?.body ?? '{}'), { success: true, message: '', data: { status: 'ok' } })
    const res = await fetch(`http://127.0.0.1:${port}/api/log/?page_size=1`, { headers: world.admin.headers })
    t.equal(res.status, 200)
    t.equal(((await res.json()) as { data: { total: number } }).data.total, world.logIds.length)
  })
})
