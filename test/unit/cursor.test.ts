import t from 'tap'
import { decodeCursor, encodeCursor } from '../../src/lib/cursor.js'

t.test('a cursor round-trips the position it was made from', async (t) => {
  for (const row of [{ created_at: 1_800_000_000, id: 42 }, { created_at: -5, id: 1 }, { created_at: 0, id: Number.MAX_SAFE_INTEGER }]) {
    t.strictSame(decodeCursor(encodeCursor(row)), { createdAt: row.created_at, id: row.id })
  }
})

t.test('anything else is a 400 naming the cursor', async (t) => {
  const bad = ['', 'nope', Buffer.from('1.2.3').toString('base64url'), Buffer.from('1.-2').toString('base64url'), Buffer.from('99999999999999999.1').toString('base64url')]
  for (const cursor of bad) {
    t.throws(() => decodeCursor(cursor), { statusCode: 400, message: /cursor/ }, JSON.stringify(cursor))
  }
})
