// Access tokens and API keys are looked up by their SHA-256 digest (users.access_token_sha256,
// tokens.key_sha256), never by the plaintext: an index walk over digests tells a timing observer
// nothing about the secret, and the statement sent to the database does not carry it. Proved from
// outside: the service runs as a database role that may not read the plaintext columns at all.
import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { createTestDatabase, testConfig } from '../helpers/app.js'
import { registerSecret } from '../helpers/secrets.js'

t.test('the service needs no read access to plaintext tokens or keys', async (t) => {
  const url = await createTestDatabase(t)
  const owner = new pg.Client({ connectionString: url })
  await owner.connect()
  t.teardown(() => owner.end())

  // Written as the gateway writes them, by SQL, with characters a careless digest would mangle.
  const token = `tok\\en-${randomBytes(8).toString('hex')}-é漢`
  const key = `k\\ey-${randomBytes(12).toString('hex')}-ß`
  for (const secret of [token, key]) registerSecret(secret)
  const { rows: [user] } = await owner.query<{ id: number }>("insert into users (username, role, status, access_token) values ('digest', 10, 1, $1) returning id", [token])
  await owner.query("insert into tokens (user_id, key, name, status) values ($1, $2, 'k', 1)", [user!.id, key])
  await owner.query("insert into logs (user_id, created_at, type, content, token_id) values ($1, 1700000000, 2, 'hello', (select id from tokens where user_id = $1))", [user!.id])

  const role = `log_reader_${randomUUID().replace(/-/g, '').slice(0, 12)}`
  const database = new URL(url).pathname.slice(1)
  await owner.query(`create role ${role} login password 'reader'`)
  t.teardown(async () => {
    await owner.query(`drop owned by ${role}`)
    await owner.query(`drop role ${role}`)
  })
  await owner.query(`grant connect on database ${database} to ${role}`)
  await owner.query(`grant usage on schema public to ${role}`)
  await owner.query(`grant select, insert, update, delete on all tables in schema public to ${role}`)
  await owner.query(`grant usage, select on all sequences in schema public to ${role}`)
  await owner.query(`revoke select on users, tokens from ${role}`)
  await owner.query(`grant select (id, username, display_name, role, status, "group", access_token_sha256) on users to ${role}`)
  await owner.query(`grant select (id, user_id, name, status, deleted_at, key_sha256) on tokens to ${role}`)

  const asReader = new URL(url)
  asReader.username = role
  asReader.password = 'reader'
  const app = await buildApp({ ...testConfig(), DATABASE_URL: asReader.toString() })
  t.teardown(() => app.close())

  const self = await app.inject({ url: '/api/log/self', headers: { authorization: `Bearer ${token}`, 'new-api-user': String(user!.id) } })
  t.equal(self.statusCode, 200, `the user is found by the digest of the token: ${self.body.slice(0, 200)}`)
  t.equal(self.json().data.items.length, 1)
  const admin = await app.inject({ url: '/api/log/', headers: { authorization: `Bearer ${token}`, 'new-api-user': String(user!.id) } })
  t.equal(admin.statusCode, 200, 'and is an admin')
  const byKey = await app.inject({ url: '/api/log/token', headers: { authorization: `Bearer sk-${key}` } })
  t.equal(byKey.statusCode, 200, `the key is found by its digest: ${byKey.body.slice(0, 200)}`)
  t.equal(byKey.json().data.length, 1)

  const wrong = await app.inject({ url: '/api/log/self', headers: { authorization: `Bearer ${token}x`, 'new-api-user': String(user!.id) } })
  t.equal(wrong.statusCode, 401, 'a wrong token is still refused')

  // The digest follows the plaintext when the gateway changes it.
  const next = `next-${randomBytes(8).toString('hex')}`
  registerSecret(next)
  await owner.query('update users set access_token = $1 where id = $2', [next, user!.id])
  const changed = await app.inject({ url: '/api/log/self', headers: { authorization: `Bearer ${next}`, 'new-api-user': String(user!.id) } })
  t.equal(changed.statusCode, 200, 'a changed token works at once')
  const old = await app.inject({ url: '/api/log/self', headers: { authorization: `Bearer ${token}`, 'new-api-user': String(user!.id) } })
  t.equal(old.statusCode, 401, 'and the old one no longer does')
})
