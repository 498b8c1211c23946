// TLS served by the service itself (TLS_CERT_FILE / TLS_KEY_FILE), and the warning when production
// runs with neither TLS nor a trusted proxy. The service runs as `npm start` does, as a child process.
import type { IncomingMessage } from 'node:http'
import { request } from 'node:https'
import { once } from 'node:events'
import path from 'node:path'
import t from 'tap'
import { startNodeChild, type NodeChild } from '../src/lib/child-process.js'
import { clearTextWarning, httpsOptions, TlsFileError } from '../src/tls.js'
import { createTestDatabase } from './helpers/app.js'
import { makeCertificate } from './helpers/tls.js'

const serverEntry = path.join(import.meta.dirname, '..', 'src', 'server.ts')
const LISTENING = /Server listening at (https?:\/\/[^"\s]+)/
const WARNING = /access tokens and API keys travel in clear text/

async function startServer (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>, ready: RegExp): Promise<NodeChild> {
  const server = startNodeChild(serverEntry, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } })
  t.teardown(server.stop)
  await server.waitForOutput(ready)
  return server
}

async function getStatus (url: string, ca: Buffer): Promise<number | undefined> {
  const req = request(url, { ca, agent: false })
  req.end()
  const [res] = await once(req, 'response') as [IncomingMessage]
  res.resume()
  return res.statusCode
}

t.test('clearTextWarning: only in production, only with neither TLS nor a trusted proxy', async (t) => {
  const base = { NODE_ENV: 'production', TRUST_PROXY: 'false', TLS_CERT_FILE: undefined, TLS_KEY_FILE: undefined }
  t.match(clearTextWarning(base), /clear text.*TLS_CERT_FILE and TLS_KEY_FILE.*TRUST_PROXY/)
  t.match(clearTextWarning({ ...base, TRUST_PROXY: '0' }), /clear text/, 'TRUST_PROXY=0 trusts nothing')
  t.equal(clearTextWarning({ ...base, NODE_ENV: undefined }), undefined, 'not outside production')
  t.equal(clearTextWarning({ ...base, NODE_ENV: 'development' }), undefined)
  t.equal(clearTextWarning({ ...base, TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' }), undefined, 'not with TLS')
  t.equal(clearTextWarning({ ...base, TRUST_PROXY: '127.0.0.1' }), undefined, 'not behind a trusted proxy')
  t.equal(clearTextWarning({ ...base, TRUST_PROXY: '1' }), undefined, 'a hop count is a trusted proxy too')
})

t.test('httpsOptions: undefined without TLS files, one sentence naming the file it cannot read', async (t) => {
  t.equal(httpsOptions({ TLS_CERT_FILE: undefined, TLS_KEY_FILE: undefined }), undefined)
  const cert = await makeCertificate(t)
  const options = httpsOptions({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile })
  t.same(options?.cert, cert.ca, 'the certificate, read')
  t.throws(() => httpsOptions({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: '/nonexistent/key.pem' }),
    new TlsFileError('cannot read TLS_KEY_FILE /nonexistent/key.pem (ENOENT): point it at a readable PEM file, or unset TLS_CERT_FILE and TLS_KEY_FILE to serve plain HTTP'))
})

t.test('with TLS_CERT_FILE and TLS_KEY_FILE the service serves HTTPS, and only HTTPS', async (t) => {
  const cert = await makeCertificate(t)
  const env = { DATABASE_URL: await createTestDatabase(t), PORT: '0', LOG_LEVEL: 'info', NODE_ENV: 'production', TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }
  const server = await startServer(t, env, LISTENING)
  const address = LISTENING.exec(server.output())?.[1] ?? ''
  t.match(address, /^https:\/\/127\.0\.0\.1:[0-9]+$/, 'it says it listens on https')
  t.match(server.output(), /curl .* https:\/\//, 'the first-start hint calls https')
  t.notMatch(server.output(), WARNING, 'no clear-text warning with TLS')

  t.equal(await getStatus(`${address}/healthz`, cert.ca), 200, 'GET /healthz over https, trusting the certificate')
  await t.rejects(fetch(`${address.replace('https:', 'http:')}/healthz`), 'plain HTTP on that port gets no answer')
  t.equal(await server.stop(), 0)
})

t.test('an unreadable certificate stops the service with one sentence', async (t) => {
  const cert = await makeCertificate(t)
  const server = await startServer(t, { DATABASE_URL: 'postgres://127.0.0.1:1/x', TLS_CERT_FILE: path.join(cert.dir, 'missing.pem'), TLS_KEY_FILE: cert.keyFile }, /cannot read/)
  t.equal(await server.exited, 1)
  t.match(server.output(), /cannot read TLS_CERT_FILE .*missing\.pem \(ENOENT\)/)
  t.notMatch(server.output(), /^\s+at /m, 'no stack trace')
})

t.test('NODE_ENV=production without TLS or TRUST_PROXY: a warning at start-up', async (t) => {
  const env = { DATABASE_URL: await createTestDatabase(t), PORT: '0', NODE_ENV: 'production' }
  const server = await startServer(t, env, LISTENING)
  t.match(server.output(), WARNING)
  t.match(server.output(), /set TLS_CERT_FILE and TLS_KEY_FILE, or run behind a TLS proxy/)
  t.equal(await server.stop(), 0)
})
