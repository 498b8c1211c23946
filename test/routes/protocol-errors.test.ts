// Failures below the routes (malformed HTTP, bad URLs, headers too large, a preflight without
// Origin, no Host) answer the contract's envelope with a stable code, as far as HTTP allows.
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'

/** Whether `data` holds a whole response: its head, then Content-Length bytes or the last chunk. */
function responseComplete (data: string): boolean {
  const end = data.indexOf('\r\n\r\n')
  if (end === -1) return false
  const head = data.slice(0, end)
  const body = data.slice(end + 4)
  const length = /\r\ncontent-length: *([0-9]+)/i.exec(head)
  if (length !== null) return body.length >= Number(length[1])
  if (/\r\ntransfer-encoding: *chunked/i.test(head)) return body.endsWith('0\r\n\r\n')
  return false
}

/**
 * Sends `raw` on a new connection and reads until the server closes it (or 5 s pass). Once a whole
 * response is in, this side ends the connection: a server that keeps it alive then closes it
 * instead of waiting out the 5 s, and whatever it sends before closing is still read.
 */
async function rawRequest (port: number, raw: string | Buffer): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.setTimeout(5000, () => { socket.destroy(); resolve(data) })
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1')
      if (responseComplete(data)) socket.end()
    })
    socket.on('end', () => { resolve(data) })
    socket.on('close', () => { resolve(data) })
    socket.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'ECONNRESET' && data !== '') resolve(data); else reject(err) })
    socket.write(raw)
  })
}

function parse (response: string): { status: number, headers: string, body: unknown } {
  const [head = '', ...rest] = response.split('\r\n\r\n')
  const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(head)?.[1])
  let body: unknown
  try { body = JSON.parse(rest.join('\r\n\r\n')) } catch { body = rest.join('\r\n\r\n') }
  return { status, headers: head, body }
}

t.test('every protocol-level failure answers the envelope', async (t) => {
  const app = await buildTestApp(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const host = `Host: 127.0.0.1:${port}\r\n`

  const cases: Array<[string, string | Buffer, number, string]> = [
    ['an unknown method', `FOO / HTTP/1.1\r\n${host}\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['a malformed request line', `GET /healthz HTTP/9\r\n${host}\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['garbage', 'hello there\r\n\r\n', 400, 'LOG_BAD_REQUEST'],
    ['a NUL in a header value', Buffer.from(`GET /healthz HTTP/1.1\r\n${host}X-A: a\u0000b\r\n\r\n`, 'latin1'), 400, 'LOG_BAD_REQUEST'],
    ['a CR in a header value', `GET /healthz HTTP/1.1\r\n${host}X-A: a\rb\r\n\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['Content-Length with chunked encoding', `POST /api/log/ HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['headers over 16 KB', `GET /healthz HTTP/1.1\r\n${host}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'LOG_HEADERS_TOO_LARGE'],
    ['a URL over 16 KB', `GET /healthz?x=${'a'.repeat(20_000)} HTTP/1.1\r\n${host}\r\n`, 431, 'LOG_HEADERS_TOO_LARGE'],
    ['a URL that is not UTF-8', `GET /api/log/self%FF HTTP/1.1\r\n${host}\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['a preflight without Origin', `OPTIONS /api/log/token HTTP/1.1\r\n${host}Access-Control-Request-Method: GET\r\n\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['a preflight without Access-Control-Request-Method', `OPTIONS /api/log/token HTTP/1.1\r\n${host}Origin: https://a.example\r\n\r\n`, 400, 'LOG_BAD_REQUEST'],
    ['an HTTP/1.1 request without Host', 'GET /healthz HTTP/1.1\r\n\r\n', 400, 'LOG_BAD_REQUEST']
  ]
  for (const [label, raw, status, code] of cases) {
    const res = parse(await rawRequest(port, raw))
    t.equal(res.status, status, `${label}: ${status}`)
    t.match(res.headers, /content-type: application\/json/i, `${label}: JSON`)
    t.match(res.body, { success: false, code, message: String }, `${label}: the envelope with ${code}`)
  }

  // What still works as before.
  const preflight = parse(await rawRequest(port, `OPTIONS /api/log/token HTTP/1.1\r\n${host}Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n`))
  t.equal(preflight.status, 204, 'a complete preflight is answered')
  const http10 = parse(await rawRequest(port, 'GET /healthz HTTP/1.0\r\n\r\n'))
  t.equal(http10.status, 200, 'HTTP/1.0 needs no Host')
})
