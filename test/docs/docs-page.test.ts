// GET /docs in a real browser: Debian's Chromium driven by puppeteer-core, against the real app
// listening on a loopback port. DOCS_SCREENSHOT=1 also writes docs/api-reference.png for the README.
import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import puppeteer from 'puppeteer-core'
import { freePort } from '../../src/lib/child-process.js'
import { buildTestApp } from '../helpers/app.js'

const chromium = process.env.CHROME_PATH ?? '/usr/bin/chromium'
const screenshot = path.join(import.meta.dirname, '..', '..', 'docs', 'api-reference.png')
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']
// Loading a 1.6 MB bundle in a cold browser on a busy CI box: generous, and never asserted on.
const WAIT = { timeout: 60_000 }

interface Document { paths: Record<string, Record<string, { operationId?: string }>> }

// The page's DOM as these checks read it: the project compiles without TypeScript's DOM library.
interface DomNode {
  id: string
  textContent: string | null
  getAttribute: (name: string) => string | null
  querySelector: (selector: string) => DomNode | null
}

t.test('/docs: a Swagger UI served by the service itself, listing every operation, whose "try it" works', async (t) => {
  // A missing browser is a failure, not a skip: CI installs it (.ci/run).
  if (!existsSync(chromium)) {
    throw new Error(`Chromium not found at ${chromium}: apt-get install -y chromium, or set CHROME_PATH`)
  }

  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const app = await buildTestApp(t, { HOST: '127.0.0.1', PORT: port, PUBLIC_URL: base })
  // What reached the service, from the socket up: no route hook can miss a request.
  const received: string[] = []
  app.server.on('request', (req: { method?: string, url?: string }) => { received.push(`${req.method ?? ''} ${req.url ?? ''}`) })
  await app.listen({ host: '127.0.0.1', port })

  const doc = (await app.inject({ url: '/openapi.json' })).json() as Document
  const operations = Object.entries(doc.paths).flatMap(([p, item]) =>
    Object.entries(item).filter(([m]) => METHODS.includes(m)).map(([m, op]) => ({ method: m.toUpperCase(), path: p, operationId: op.operationId ?? '' })))
  t.ok(operations.length > 0, 'the document has operations')

  const browser = await puppeteer.launch({
    executablePath: chromium,
    // headless: true is Chromium's new headless mode (--headless=new); root needs --no-sandbox,
    // and containers have a small /dev/shm.
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    protocolTimeout: 120_000
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.setViewport({ width: 1280, height: 900 })

  // Every request the page makes; one to anywhere but the service is recorded and refused, so a
  // CDN reference fails the test here instead of hanging it on a machine without internet.
  const requested: string[] = []
  const foreign: string[] = []
  const pageErrors: string[] = []
  await page.setRequestInterception(true)
  page.on('request', (request) => {
    const url = request.url()
    requested.push(url)
    if (url.startsWith(`${base}/`) || url.startsWith('data:') || url.startsWith('blob:')) {
      request.continue().catch(() => {})
    } else {
      foreign.push(url)
      request.abort().catch(() => {})
    }
  })
  page.on('pageerror', (err) => { pageErrors.push(String(err)) })

  const res = await page.goto(`${base}/docs`, { waitUntil: 'networkidle0', ...WAIT })
  t.equal(res?.status(), 200, 'GET /docs answers 200 without credentials')
  await page.waitForSelector('.opblock', WAIT)

  t.test('loads nothing from another host', async (t) => {
    t.strictSame(foreign, [], 'no request leaves the service')
    for (const asset of ['/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css', '/docs/json']) {
      t.ok(requested.includes(`${base}${asset}`), `${asset} from the service`)
    }
    t.strictSame(pageErrors, [], 'no script error')
  })

  t.test('lists every operation of the OpenAPI document', async (t) => {
    const listed = await page.$$eval('.opblock', (blocks: DomNode[]) => blocks.map((block) => ({
      id: block.id,
      method: block.querySelector('.opblock-summary-method')?.textContent?.trim() ?? '',
      path: block.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? '',
      operationId: block.querySelector('.opblock-summary-operation-id')?.textContent?.trim() ?? ''
    })))
    for (const op of operations) {
      t.ok(listed.some((l) => l.method === op.method && l.path === op.path && l.operationId === op.operationId),
        `${op.method} ${op.path} (${op.operationId}) is on the page`)
    }
    t.equal(new Set(listed.map((l) => `${l.method} ${l.path}`)).size, operations.length, 'and nothing else')

    if (process.env.DOCS_SCREENSHOT !== undefined && process.env.DOCS_SCREENSHOT !== '') {
      mkdirSync(path.dirname(screenshot), { recursive: true })
      await page.screenshot({ path: screenshot, fullPage: true })
      t.ok(existsSync(screenshot), `screenshot written to ${screenshot}`)
    }
  })

  t.test('"Try it out" on /healthz sends a real request to the server of the document', async (t) => {
    const listed = await page.$$eval('.opblock', (blocks: DomNode[]) => blocks.map((block) => ({
      id: block.id,
      operationId: block.querySelector('.opblock-summary-operation-id')?.textContent?.trim() ?? ''
    })))
    const block = `#${listed.find((l) => l.operationId === 'healthz')?.id ?? 'operations-ops-healthz'}`
    await page.click(`${block} .opblock-summary-control`)
    await page.click(`${await waitFor(block, '.try-out__btn')}`)
    const before = received.length
    await page.click(`${await waitFor(block, '.execute')}`)

    const status = await waitFor(block, '.live-responses-table tbody .response-col_status')
    t.equal(await page.$eval(status, (el: DomNode) => el.textContent?.trim()), '200', 'the page shows the answer\'s status')
    const body = await page.$eval(`${block} .live-responses-table tbody .response-col_description`, (el: DomNode) => el.textContent ?? '')
    t.match(body, /"status":\s*"ok"/, 'and its body')
    t.ok(received.slice(before).includes('GET /healthz'), 'the service received GET /healthz')
    t.ok(requested.includes(`${base}/healthz`), 'sent to PUBLIC_URL, the document\'s server')
  })

  async function waitFor (block: string, selector: string) {
    const full = `${block} ${selector}`
    await page.waitForSelector(full, { visible: true, ...WAIT })
    return full
  }
})
