import t from 'tap'
import { buildTestApp, createUser } from '../helpers/app.js'

t.test('admin list answers on an empty table', async (t) => {
  const app = await buildTestApp(t)
  const admin = await createUser(app.db, { role: 10 })
  const res = await app.inject({ url: '/api/log/', headers: admin.headers })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { success: true, message: '', data: { items: [], total: 0, total_exact: true, page: 1, page_size: 20, next_cursor: null } })
})
