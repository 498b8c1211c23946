import t from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { buildTestApp } from '../helpers/app.js'

// openapi.json is committed, so that a client can be generated from the repository and a change
// to the document shows in review. It must be what the route schemas produce today.
t.test('the committed openapi.json is the document the app serves (else: npm run openapi)', async (t) => {
  const app = await buildTestApp(t)
  const served = (await app.inject({ url: '/openapi.json' })).json()
  const committed = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'openapi.json'), 'utf8'))
  t.strictSame(committed, served)
})
