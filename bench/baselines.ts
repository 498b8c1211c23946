// The two baselines the service is measured against, in a process of their own:
//   GET /static      a fixed page of 20 log items (the newest rows of the table, loaded once) with a
//                    response schema: the HTTP stack's ceiling for a page of that size.
//   GET /naive?user= the newest 20 rows of one user straight from pg (Pool of 10): no auth, no
//                    total, no deferred join, default JSON.stringify.
// Run as a child of bench/run.ts: DATABASE_URL=… PORT=… node --import tsx bench/baselines.ts
import Fastify from 'fastify'
import pg from 'pg'

// "Newest" in the contract's order, which the schema indexes for a user (user_id, created_at, id).
// ../shared/research/perf-limits.md §9 used ORDER BY id DESC with a (user_id, id) index; on this schema that
// order has no per-user index and turns into a bitmap scan plus sort of all the user's rows, which
// would measure a missing index instead of the stack.
export const NAIVE_SQL = 'SELECT * FROM logs WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 20'

const USER_COLUMNS = 'id, user_id, created_at, type, content, token_name, model_name, quota, prompt_tokens, completion_tokens, use_time, is_stream, "group", request_id'

const int = { type: 'integer' } as const
const str = { type: 'string' } as const

const ItemSchema = {
  type: 'object',
  properties: {
    id: int,
    user_id: int,
    created_at: int,
    type: int,
    content: str,
    token_name: str,
    model_name: str,
    quota: int,
    prompt_tokens: int,
    completion_tokens: int,
    use_time: int,
    is_stream: { type: 'boolean' },
    group: str,
    request_id: str
  }
} as const

const StaticPageSchema = {
  type: 'object',
  properties: {
    success: { type: 'boolean' },
    message: str,
    data: {
      type: 'object',
      properties: {
        items: { type: 'array', items: ItemSchema },
        total: int,
        total_exact: { type: 'boolean' },
        page: int,
        page_size: int,
        next_cursor: { type: ['string', 'null'] }
      }
    }
  }
} as const

type Item = Record<string, string | number | boolean>

function fillerItem (i: number): Item {
  return {
    id: 1_000_000 + i,
    user_id: 1,
    created_at: 1_795_835_014 - i,
    type: 2,
    content: 'model ratio 1.25, completion ratio 4.00, cache ratio 0.10, group ratio 1.00, user group ratio 1.00',
    token_name: 'default-1',
    model_name: 'gpt-4o',
    quota: 12_345,
    prompt_tokens: 812,
    completion_tokens: 96,
    use_time: 3,
    is_stream: true,
    group: 'default',
    request_id: ''
  }
}

/** A self-list page as the service answers it: the newest 20 rows, padded when the table is smaller. */
export async function loadStaticPage (pool: pg.Pool) {
  const { rows } = await pool.query(`SELECT ${USER_COLUMNS} FROM logs ORDER BY created_at DESC, id DESC LIMIT 20`)
  // int8 columns arrive as strings from pg; the service sends numbers.
  const items: Item[] = rows.map((r: Item) => ({ ...r, id: Number(r.id), created_at: Number(r.created_at), quota: Number(r.quota) }))
  for (let i = items.length; i < 20; i++) items.push(fillerItem(i))
  return {
    success: true,
    message: '',
    data: { items, total: 10_000_000, total_exact: true, page: 1, page_size: 20, next_cursor: 'MTc5NTgzNTAxNC45OTk5OTgx' }
  }
}

export async function buildBaselines (databaseUrl: string) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 })
  const page = await loadStaticPage(pool)
  const app = Fastify({ logger: false })
  app.addHook('onClose', async () => { await pool.end() })

  app.get('/static', { schema: { response: { 200: StaticPageSchema } } }, async () => page)

  app.get<{ Querystring: { user: number } }>('/naive', {
    schema: { querystring: { type: 'object', properties: { user: int }, required: ['user'] } }
  }, async (request) => {
    const { rows } = await pool.query(NAIVE_SQL, [request.query.user])
    return { success: true, message: '', data: rows }
  })

  return app
}

if (process.argv[1] === import.meta.filename) {
  const url = process.env.DATABASE_URL
  if (url === undefined || url === '') {
    process.stderr.write('baselines: DATABASE_URL is required\n')
    process.exit(1)
  }
  const app = await buildBaselines(url)
  const stop = () => { app.close().then(() => process.exit(0), () => process.exit(1)) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
}
