// deploy/nginx.conf in front of the real service: Debian's nginx as a child process on loopback
// ports (only the site-specific strings of the file swapped), TLS with a certificate made here, the
// service listening with TRUST_PROXY=127.0.0.1. Linux accepts any 127.x.y.z as a local source
// address, which gives the test several distinct clients.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import t, { type Test } from 'tap'
import type { App } from '../../src/app.js'
import { freePort } from '../../src/lib/child-process.js'
import { buildTestApp, createApiKey, createUser } from '../helpers/app.js'
import { makeCertificate, type TestCertificate } from '../helpers/tls.js'

const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx'
const CONF = path.join(import.meta.dirname, '..', '..', 'deploy', 'nginx.conf')
const RATE_LIMIT = 3

/** deploy/nginx.conf with its site-specific strings (listed in its header) swapped; a string that is gone fails the test. */
function adaptConfig (text: string, swaps: Array<[string, string]>): string {
  for (const [from, to] of swaps) {
    if (!text.includes(from)) throw new Error(`deploy/nginx.conf no longer contains '${from}': keep the strings its header lists, or update this test`)
    text = text.replaceAll(from, to)
  }
  return text
}

async function twoFreePorts (): Promise<[number, number]> {
  const a = await freePort()
  let b = await freePort()
  while (b === a) b = await freePort()
  return [a, b]
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

interface Nginx {
  https: string
  http: string
  accessLog: string
}

/**
 * nginx with deploy/nginx.conf (after `edit`), in front of the service on `upstreamPort`, until
 * teardown. Its own process group, so that teardown ends the workers with the master.
 */
async function startNginx (t: Test, cert: TestCertificate, upstreamPort: number, name: string, edit = (conf: string) => conf): Promise<Nginx> {
  const dir = path.join(cert.dir, name)
  mkdirSync(path.join(dir, 'tmp'), { recursive: true })
  const [httpsPort, httpPort] = await twoFreePorts()
  const errorLog = path.join(dir, 'log-service.error.log')
  const confFile = path.join(dir, 'nginx.conf')
  writeFileSync(confFile, edit(adaptConfig(readFileSync(CONF, 'utf8'), [
    ['listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`],
    ['listen 80;', `listen 127.0.0.1:${httpPort};`],
    ['server 127.0.0.1:3000;', `server 127.0.0.1:${upstreamPort};`],
    ['/etc/ssl/log-service/fullchain.pem', cert.certFile],
    ['/etc/ssl/log-service/privkey.pem', cert.keyFile],
    ['/run/nginx-log-service.pid', path.join(dir, 'nginx.pid')],
    ['/var/log/nginx/log-service.', path.join(dir, 'log-service.')],
    ['/var/lib/nginx/log-service/', path.join(dir, 'tmp') + '/']
  ])))

  // -e: the log nginx writes to before it has read the configuration's error_log.
  const child = spawn(NGINX, ['-p', dir, '-e', errorLog, '-c', confFile, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.once('error', (err) => { output += `spawn failed: ${err.message}\n` })
  const exited = once(child, 'exit')
  const diagnostics = () => `nginx output:\n${output}\nerror log:\n${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '(none)'}`

  t.teardown(async () => {
    // No pid: it never started (and -0 would be this very process group).
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    const group = -child.pid
    const signal = (name: NodeJS.Signals) => { try { process.kill(group, name) } catch {} }
    // SIGTERM is nginx's fast shutdown; the group also reaches workers a dead master would leave behind.
    signal('SIGTERM')
    // Unref'd: a pending timeout must not hold the test process once nginx is gone.
    const stopped = await Promise.race([exited.then(() => true), sleep(10_000, false, { ref: false })])
    if (!stopped) signal('SIGKILL')
  })

  for (let waited = 0; !(await accepts(httpsPort)); waited += 50) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) throw new Error(`nginx exited (${child.exitCode ?? child.signalCode}) before listening\n${diagnostics()}`)
    if (waited > 20_000) throw new Error(`nginx did not listen on ${httpsPort} within 20 s\n${diagnostics()}`)
    await sleep(50)
  }
  t.teardown(() => { if (t.passing() === false) t.comment(diagnostics()) })
  return { https: `https://127.0.0.1:${httpsPort}`, http: `http://127.0.0.1:${httpPort}`, accessLog: path.join(dir, 'log-service.access.log') }
}

interface Call {
  method?: string
  headers?: OutgoingHttpHeaders
  /** the client's source address (any 127.x.y.z on Linux) */
  from?: string
  ca?: Buffer
}

/** One request on its own connection (so `from` applies); resolves with the response, body unread. */
async function open (url: string, call: Call = {}, body?: (req: ReturnType<typeof httpRequest>) => void): Promise<IncomingMessage> {
  const options = { method: call.method ?? 'GET', headers: call.headers, localAddress: call.from, agent: false as const }
  const req = url.startsWith('https:') ? httpsRequest(url, { ...options, ca: call.ca }) : httpRequest(url, options)
  const response = once(req, 'response') as Promise<[IncomingMessage]>
  if (body === undefined) req.end()
  else body(req)
  return (await response)[0]
}

async function text (res: IncomingMessage): Promise<string> {
  let s = ''
  for await (const chunk of res) s += (chunk as Buffer).toString()
  return s
}

/** Lines (NDJSON records) in what is left of the body, counted as it streams by. */
async function countLines (res: IncomingMessage, already: Buffer): Promise<number> {
  let lines = 0
  const count = (chunk: Buffer) => { for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++ }
  count(already)
  for await (const chunk of res) count(chunk as Buffer)
  return lines
}

interface Seen { url: string, ip: string, forwardedFor: string | undefined, forwardedProto: string | undefined, requestId: string | undefined }

/** What the service saw of each request: Fastify's client address (after trustProxy) and the proxy's headers. */
function watchRequests (app: App): Seen[] {
  const seen: Seen[] = []
  app.addHook('onRequest', async (request) => {
    const h = request.headers
    seen.push({ url: request.url, ip: request.ip, forwardedFor: h['x-forwarded-for'] as string | undefined, forwardedProto: h['x-forwarded-proto'] as string | undefined, requestId: h['x-request-id'] as string | undefined })
  })
  return seen
}

t.test('deploy/nginx.conf in front of the service', async (t) => {
  // A missing nginx is a failure, not a skip: CI installs it (.ci/run).
  if (!existsSync(NGINX)) throw new Error(`nginx not found at ${NGINX}: .ci/run installs it (apt-get install -y --no-install-recommends nginx), or set NGINX_PATH`)

  const cert = await makeCertificate(t)
  const app = await buildTestApp(t, { TRUST_PROXY: '127.0.0.1', TOKEN_RATE_LIMIT_MAX: RATE_LIMIT, INGEST_CHUNK_ROWS: 1 })
  const seen = watchRequests(app)
  // The raw responses of the exports, to see from the service's side whether one has been flushed.
  const exports: ServerResponse[] = []
  app.server.on('request', (req: IncomingMessage, res: ServerResponse) => { if (req.url?.startsWith('/api/log/export') === true) exports.push(res) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const service = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const nginx = await startNginx(t, cert, Number(new URL(service).port), 'edge')
  const tls = { ca: cert.ca }

  const admin = await createUser(app.db, { role: 100 })
  const owner = await createUser(app.db)
  const key = await createApiKey(app.db, owner.id)
  const tokenUrl = `${nginx.https}/api/log/token?key=${key.key}`
  const lastSeen = (prefix: string) => seen.filter((s) => s.url.startsWith(prefix)).at(-1)

  t.test('TLS on the HTTPS port, a redirect on the HTTP one', async (t) => {
    const res = await open(`${nginx.https}/healthz`, tls)
    t.equal(res.statusCode, 200)
    t.match(res.headers['strict-transport-security'], /max-age=/)
    await text(res)
    t.equal(lastSeen('/healthz')?.forwardedProto, 'https', 'the service is told the client used https')

    const plain = await open(`${nginx.http}/api/log/?p=2`)
    t.equal(plain.statusCode, 301)
    t.equal(plain.headers.location, 'https://127.0.0.1/api/log/?p=2')
    await text(plain)
  })

  t.test('each client address has its own token-route rate-limit bucket', async (t) => {
    for (let i = 1; i <= RATE_LIMIT; i++) {
      const res = await open(tokenUrl, { ...tls, from: '127.0.0.2' })
      t.equal(res.statusCode, 200, `127.0.0.2, request ${i}`)
      t.equal(res.headers['x-ratelimit-remaining'], String(RATE_LIMIT - i))
      await text(res)
    }
    const limited = await open(tokenUrl, { ...tls, from: '127.0.0.2' })
    t.equal(limited.statusCode, 429, '127.0.0.2 has used up its bucket')
    await text(limited)
    t.equal(lastSeen('/api/log/token')?.ip, '127.0.0.2', 'the service sees the client, not nginx')

    const other = await open(tokenUrl, { ...tls, from: '127.0.0.3' })
    t.equal(other.statusCode, 200, '127.0.0.3 is still served')
    t.equal(other.headers['x-ratelimit-remaining'], String(RATE_LIMIT - 1), 'from a fresh bucket')
    await text(other)
    t.equal(lastSeen('/api/log/token')?.ip, '127.0.0.3')
  })

  t.test('a client\'s own X-Forwarded-For is not believed', async (t) => {
    const first = await open(tokenUrl, { ...tls, from: '127.0.0.4' })
    t.equal(first.headers['x-ratelimit-remaining'], String(RATE_LIMIT - 1))
    await text(first)

    const spoofed = await open(tokenUrl, { ...tls, from: '127.0.0.4', headers: { 'x-forwarded-for': '9.9.9.9' } })
    t.equal(spoofed.statusCode, 200)
    t.equal(spoofed.headers['x-ratelimit-remaining'], String(RATE_LIMIT - 2), 'through nginx: still counted in 127.0.0.4\'s bucket')
    await text(spoofed)
    t.match(lastSeen('/api/log/token'), { ip: '127.0.0.4', forwardedFor: '127.0.0.4' }, 'nginx replaced the header, not appended to it')

    const direct = { from: '127.0.0.5', headers: { 'x-forwarded-for': '9.9.9.9' } }
    const untrusted = await open(`${service}/api/log/token?key=${key.key}`, direct)
    t.equal(untrusted.headers['x-ratelimit-remaining'], String(RATE_LIMIT - 1))
    await text(untrusted)
    const again = await open(`${service}/api/log/token?key=${key.key}`, { ...direct, headers: { 'x-forwarded-for': '8.8.8.8' } })
    t.equal(again.headers['x-ratelimit-remaining'], String(RATE_LIMIT - 2), 'straight to the service from an untrusted hop: one bucket, whatever the header says')
    await text(again)
    t.equal(lastSeen('/api/log/token')?.ip, '127.0.0.5')

    // The trusted hop is believed, and 9.9.9.9's bucket is untouched: none of the above counted there.
    const trusted = await open(`${service}/api/log/token?key=${key.key}`, { from: '127.0.0.1', headers: { 'x-forwarded-for': '9.9.9.9' } })
    t.equal(trusted.headers['x-ratelimit-remaining'], String(RATE_LIMIT - 1))
    await text(trusted)
    t.equal(lastSeen('/api/log/token')?.ip, '9.9.9.9')
  })

  t.test('the access log keeps API keys out', async (t) => {
    const log = readFileSync(nginx.accessLog, 'utf8')
    t.match(log, /GET \/api\/log\/token HTTP/, 'token requests are logged')
    t.notOk(log.includes(key.key), 'without their key parameter')
  })

  t.test('X-Request-Id: the client\'s is passed on, else nginx makes one, and it comes back', async (t) => {
    const given = await open(`${nginx.https}/healthz`, { ...tls, headers: { 'x-request-id': 'abc-123' } })
    await text(given)
    t.equal(lastSeen('/healthz')?.requestId, 'abc-123', 'the service receives the client\'s id')
    t.equal(given.headers['x-request-id'], 'abc-123', 'and answers with it')

    for (const header of [{}, { 'x-request-id': 'not a plain token' }]) {
      const made = await open(`${nginx.https}/healthz`, { ...tls, headers: header })
      await text(made)
      const id = lastSeen('/healthz')?.requestId
      t.match(id, /^[0-9a-f]{32}$/, `${JSON.stringify(header)}: the service receives nginx's $request_id`)
      t.equal(made.headers['x-request-id'], id, 'and answers with it')
    }
  })

  t.test('POST /api/log/: an NDJSON body reaches the service while it is still being sent', async (t) => {
    const before = seen.length
    let sending: ReturnType<typeof httpRequest> | undefined
    const response = open(`${nginx.https}/api/log/`, { ...tls, method: 'POST', headers: { ...admin.headers, 'content-type': 'application/x-ndjson' } }, (req) => {
      sending = req
      req.write('{"user_id":1,"type":2,"content":"first"}\n')
    })
    // With request buffering on, nginx would wait for the whole body before calling the service.
    for (let waited = 0; !seen.slice(before).some((s) => s.url === '/api/log/'); waited += 20) {
      if (waited > 30_000) throw new Error('the service never saw the request while its body was open')
      await sleep(20)
    }
    t.pass('the service has the request before the body ended')
    sending?.end('{"user_id":1,"type":2,"content":"second"}\n')
    const res = await response
    t.equal(res.statusCode, 200)
    t.match(JSON.parse(await text(res)), { success: true, data: 2 })
  })

  t.test('DELETE /api/log/ (purge) goes through its long-timeout location', async (t) => {
    const res = await open(`${nginx.https}/api/log/?target_timestamp=${Math.floor(Date.now() / 1000) + 60}`, { ...tls, method: 'DELETE', headers: admin.headers })
    t.equal(res.statusCode, 200)
    t.match(JSON.parse(await text(res)), { success: true, data: 2 }, 'the two ingested rows')
  })

  t.test('an export is streamed: a client that stops reading holds the service back', async (t) => {
    // nginx takes X-Accel-* headers for itself and passes none on: ask the service directly.
    const empty = await app.inject({ url: '/api/log/export?format=ndjson', headers: admin.headers })
    t.equal(empty.headers['x-accel-buffering'], 'no', 'the service asks any nginx not to buffer an export')

    // Rows of ~1.4 kB: ~56 MB of NDJSON, more than the loopback socket buffers on both sides can hold.
    const rows = 40_000
    await sql`insert into logs (user_id, created_at, type, content)
      select ${owner.id}, 1700000000 + g, 2, repeat('x', 1200) from generate_series(1, ${rows}) g`.execute(app.db)

    await t.test('through deploy/nginx.conf', async (t) => {
      const res = await open(`${nginx.https}/api/log/export?format=ndjson`, { ...tls, headers: admin.headers })
      t.equal(res.statusCode, 200)
      await once(res, 'readable')
      const first = res.read() as Buffer
      t.ok(first.length > 0, 'the first chunk arrived')
      const served = exports.at(-1)
      if (served === undefined) throw new Error('the service saw no export request')

      // The deterministic part: the service's socket backs up. Then, bounded: it stays unfinished.
      for (let waited = 0; !served.writableNeedDrain; waited += 20) {
        if (served.writableFinished || waited > 30_000) break
        await sleep(20)
      }
      t.ok(served.writableNeedDrain, 'the service waits for its socket to drain')
      await sleep(1000)
      t.notOk(served.writableFinished, 'still not finished 1 s after the client stopped reading')

      t.equal(await countLines(res, first), rows, 'every row arrives once the client reads on')
      if (!served.writableFinished) await once(served, 'finish')
      t.ok(served.writableFinished, 'and the service finishes')
    })

    await t.test('control: the same client behind a buffering nginx lets the service finish', async (t) => {
      const buffering = await startNginx(t, cert, Number(new URL(service).port), 'buffering', (conf) => conf.replace(
        'proxy_buffering off;', 'proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;'))
      const res = await open(`${buffering.https}/api/log/export?format=ndjson`, { ...tls, headers: admin.headers })
      t.equal(res.statusCode, 200)
      await once(res, 'readable')
      const first = res.read() as Buffer
      const served = exports.at(-1)
      if (served === undefined) throw new Error('the service saw no export request')
      // nginx spools the rest to its temp folder: the service finishes while the client still waits.
      if (!served.writableFinished) await once(served, 'finish')
      t.ok(served.writableFinished, 'the service finished with the client still paused')
      t.equal(await countLines(res, first), rows)
    })
  })
})
