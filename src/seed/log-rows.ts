import { LogType } from '../domain.js'
import { escapeCopyText } from '../db/copy-text.js'
import type { Dimensions } from './dimensions.js'
import { Random } from './random.js'
import { GROUPS, modelList, QUOTA_PER_USD, type ModelInfo } from './vocabulary.js'

// Log rows as COPY text, written byte by byte into ~1 MB buffers. Every text that depends only on
// the user, token, model, channel or group is encoded once up front (with the tabs around it), so
// a row is a few memory copies and some digits: no strings and no objects per row. (Building the
// rows as JS strings ran at ~3 µs a row, slower than PostgreSQL takes them in; this at <0.5 µs.)

/** The COPY column list, in the order the generator writes them (per-user columns last, so they are one precomputed piece). */
export const LOG_COPY_COLUMNS = [
  'id', 'created_at', 'type', 'content', 'quota', 'prompt_tokens', 'completion_tokens', 'use_time',
  'is_stream', 'model_name', 'channel_id', 'request_id', 'other',
  'user_id', 'username', 'group', 'ip', 'token_id', 'token_name'
] as const

export interface LogRowOptions {
  rows: number
  /** id of the first row; ids increase with created_at */
  firstId: number
  /** window [start, end) in unix seconds */
  start: number
  end: number
  models: number
  /** user position = floor(users * random^skew): a few users are heavy */
  skew: number
  seed: number
}

export interface LogChunks {
  /** the next chunk of COPY text (UTF-8, whole rows), or undefined when every row has been produced */
  next: () => Buffer | undefined
  rowsDone: () => number
}

const CHANNELS_PER_MODEL = 3
const ERROR_STATUS = [429, 500, 400, 503, 401]
const ERROR_CODES = ['rate_limit_exceeded', 'do_request_failed', 'invalid_request_error', 'model_not_available', 'invalid_api_key']
const ERROR_KINDS = ERROR_STATUS.length

const TAB = 9
const DOT = 46
const ZERO = 48
const HEX = Buffer.from('0123456789abcdef')
const ALNUM = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789')
const ALNUM_SQ = ALNUM.length * ALNUM.length

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8')
/** a value from outside (a name in the database), escaped for COPY */
const copyBytes = (value: string): Buffer => bytes(escapeCopyText(value))
/** from the tab after created_at into the content: the texts are new-api's, the type numbers the contract's */
const typed = (type: number, content: string): Buffer => bytes(`\t${type}\t${content}`)

const ERROR_429_HEAD = typed(LogType.error, 'status_code=429, upstream error: Rate limit reached for requests (request id: req_')
const ERROR_500 = typed(LogType.error, 'status_code=500, upstream error: context deadline exceeded (Client.Timeout exceeded while awaiting headers)')
const ERROR_400_HEAD = typed(LogType.error, 'status_code=400, 请求参数错误: messages 不能为空 (request id: ')
const ERROR_503 = typed(LogType.error, 'status_code=503, 当前分组上游负载已饱和，请稍后再试')
const ERROR_ID_TAIL = bytes(')')
const ERROR_NUMBERS = bytes('\t0\t0\t0\t')
const TOP_UP_CODE_HEAD = typed(LogType.topUp, '通过兑换码充值 $')
const TOP_UP_CODE_TAIL = bytes(' 额度\t')
const TOP_UP_ONLINE_HEAD = typed(LogType.topUp, 'Recharged via online payment, amount $')
const MANAGE_HEAD = typed(LogType.manage, '管理员将用户额度从 $')
const MANAGE_MID = bytes(' 修改为 $')
const SIGN_UP = typed(LogType.system, '用户注册，赠送初始额度 $1.00\t')
const SIGN_UP_OAUTH_HEAD = typed(LogType.system, 'new user registered via GitHub OAuth, invited by user ')
/** from the tab after quota through other: no tokens, stream false, no model, channel 0, no request id, no other */
const NO_REQUEST_MIDDLE = bytes('\t0\t0\t0\tf\t\t0\t\t\t')
const STREAM_TRUE = bytes('\tt\t')
const STREAM_FALSE = bytes('\tf\t')
const FIXED_PIECES = [ERROR_400_HEAD, ERROR_429_HEAD, ERROR_500, ERROR_503, TOP_UP_CODE_HEAD, TOP_UP_ONLINE_HEAD, MANAGE_HEAD, SIGN_UP, SIGN_UP_OAUTH_HEAD]

function put (b: Buffer, p: number, piece: Uint8Array): number {
  const n = piece.length
  if (n > 24) {
    b.set(piece, p)
    return p + n
  }
  for (let i = 0; i < n; i++) b[p + i] = piece[i]!
  return p + n
}

/** a non-negative integer in decimal */
function putUint (b: Buffer, p: number, n: number): number {
  if (n > 0x7fffffff) return put(b, p, bytes(String(n)))
  let len = 1
  for (let t = n; t >= 10; t = (t / 10) | 0) len++
  let q = p + len
  do {
    b[--q] = ZERO + n % 10
    n = (n / 10) | 0
  } while (n > 0)
  return p + len
}

/** exactly `width` decimal digits, zero-padded */
function putDigits (b: Buffer, p: number, n: number, width: number): number {
  for (let q = p + width - 1; q >= p; q--) {
    b[q] = ZERO + n % 10
    n = (n / 10) | 0
  }
  return p + width
}

function putHex8 (b: Buffer, p: number, x: number): number {
  for (let q = p + 7; q >= p; q--) {
    b[q] = HEX[x & 15]!
    x >>>= 4
  }
  return p + 8
}

/** four letters or digits from one uint32 (new-api's GetRandomString alphabet) */
function putAlnum4 (b: Buffer, p: number, x: number): number {
  const lo = x % ALNUM_SQ
  const hi = Math.floor(x / ALNUM_SQ) % ALNUM_SQ
  b[p] = ALNUM[lo % 62]!
  b[p + 1] = ALNUM[(lo / 62) | 0]!
  b[p + 2] = ALNUM[hi % 62]!
  b[p + 3] = ALNUM[(hi / 62) | 0]!
  return p + 4
}

/** new-api style yyyyMMddHHmm (UTC here); the seconds are appended per row */
function minuteDigits (unixMinute: number): Buffer {
  const iso = new Date(unixMinute * 60_000).toISOString()
  return bytes(iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16))
}

function jsonNumber (decimal: string): string {
  return String(Number(decimal))
}

const maxLength = (pieces: Uint8Array[]): number => pieces.reduce((max, piece) => Math.max(max, piece.length), 0)

/** The per-row randomness starts from the user seed and the first id, so an --append run does not repeat the rows before it. */
export function logRowStream (seed: number, firstId: number): Random {
  return new Random(seed, firstId)
}

export function createLogChunks (dims: Dimensions, opts: LogRowOptions, chunkBytes = 1 << 20): LogChunks {
  if (dims.users.length === 0) throw new Error('no users to write logs for')
  if (dims.channelIds.length === 0) throw new Error('no channels to write logs for')
  if (opts.end <= opts.start) throw new Error('the time window is empty')

  const writer = new LogRowWriter(rowPieces(dims, modelList(opts.models)), opts)
  const { rows } = opts
  let done = 0

  function next (): Buffer | undefined {
    if (done >= rows) return undefined
    const b = Buffer.allocUnsafeSlow(chunkBytes + writer.rowMax)
    let p = 0
    while (done < rows && p < chunkBytes) p = writer.writeRow(b, p, done++)
    return b.subarray(0, p)
  }

  return { next, rowsDone: () => done }
}

/** Users' groups by position: the known groups plus whatever an existing database holds (ratio 1 for unknown names). */
interface GroupPieces {
  userGroup: Int32Array
  groupRatios: string[]
}

/** Texts per (model, group): the consume content (English, Chinese) and the tail of the other JSON. */
interface ModelGroupPieces {
  /** at ((model * groups + group) * 2 + language) */
  consumeContent: Buffer[]
  /** at (group * models + model) */
  otherTail: Buffer[]
}

/** Texts per (model, channel slot), at (model * CHANNELS_PER_MODEL + slot), and per model. */
interface ModelChannelPieces {
  /** "model_name\tchannel_id\t" */
  modelChannel: Buffer[]
  otherHead: Buffer[]
  /** at ((model * CHANNELS_PER_MODEL + slot) * ERROR_KINDS + error kind) */
  errorOther: Buffer[]
  error401: Buffer[]
  /** per model */
  otherMid: Buffer[]
}

/** Everything from user_id to the newline, at (user * 2 + ip variant) and at ((token index) * 2 + ip variant). */
interface UserTokenPieces {
  userTail: Buffer[]
  tokenTail: Buffer[]
  /** a user's first token index in tokenTail / 2 */
  tokenBase: Int32Array
  tokenCount: Int32Array
}

/** What a row is assembled from: every text that is not per row, encoded once up front. */
interface RowPieces extends GroupPieces, ModelGroupPieces, ModelChannelPieces, UserTokenPieces {
  nModels: number
  nUsers: number
  nGroups: number
  /** bytes a row never exceeds: the longest piece of each kind plus room for the numbers */
  rowMax: number
}

function rowPieces (dims: Dimensions, models: ModelInfo[]): RowPieces {
  const groups = groupPieces(dims)
  const pieces = {
    ...groups,
    ...modelGroupPieces(models, groups.groupRatios),
    ...modelChannelPieces(models, dims.channelIds),
    ...userTokenPieces(dims),
    nModels: models.length,
    nUsers: dims.users.length,
    nGroups: groups.groupRatios.length
  }
  const rowMax = 512 + maxLength(pieces.consumeContent) + maxLength(pieces.modelChannel) + maxLength(pieces.otherHead) +
    maxLength(pieces.otherMid) + maxLength(pieces.otherTail) + maxLength(pieces.errorOther) + maxLength(pieces.error401) +
    maxLength(pieces.userTail) + maxLength(pieces.tokenTail) + maxLength(FIXED_PIECES)
  return { ...pieces, rowMax }
}

function groupPieces (dims: Dimensions): GroupPieces {
  const groupIndex = new Map<string, number>()
  const groupRatios: string[] = []
  for (const g of GROUPS) { groupIndex.set(g.name, groupRatios.length); groupRatios.push(g.ratio) }
  const userGroup = new Int32Array(dims.users.length)
  dims.users.forEach((u, i) => {
    let gi = groupIndex.get(u.group)
    if (gi === undefined) { gi = groupRatios.length; groupIndex.set(u.group, gi); groupRatios.push('1.00') }
    userGroup[i] = gi
  })
  return { userGroup, groupRatios }
}

function modelGroupPieces (models: ModelInfo[], groupRatios: string[]): ModelGroupPieces {
  const consumeContent: Buffer[] = []
  for (const model of models) {
    for (const gr of groupRatios) {
      consumeContent.push(typed(LogType.consume, `model ratio ${model.ratio}, completion ratio ${model.completionRatio}, cache ratio 0.10, group ratio ${gr}, user group ratio ${gr}\t`))
      consumeContent.push(typed(LogType.consume, `模型倍率 ${model.ratio}，补全倍率 ${model.completionRatio}，缓存倍率 0.10，分组倍率 ${gr}\t`))
    }
  }
  const otherTail: Buffer[] = []
  for (const gr of groupRatios) {
    for (const model of models) {
      otherTail.push(bytes(`,"group_ratio":${jsonNumber(gr)},"model_price":-1,"model_ratio":${jsonNumber(model.ratio)}}\t`))
    }
  }
  return { consumeContent, otherTail }
}

// Three channels per model, dealt round the channel list.
function modelChannelPieces (models: ModelInfo[], channelIds: number[]): ModelChannelPieces {
  const pieces: ModelChannelPieces = { modelChannel: [], otherHead: [], errorOther: [], error401: [], otherMid: [] }
  models.forEach((model, m) => {
    for (let j = 0; j < CHANNELS_PER_MODEL; j++) {
      const ch = String(channelIds[(m * CHANNELS_PER_MODEL + j) % channelIds.length])
      pieces.modelChannel.push(Buffer.concat([copyBytes(model.name), bytes(`\t${ch}\t`)]))
      pieces.otherHead.push(bytes(`\t{"admin_info":{"use_channel":["${ch}"]},"cache_ratio":0.1,"cache_tokens":`))
      ERROR_STATUS.forEach((status, k) => {
        pieces.errorOther.push(bytes(`\t{"admin_info":{"use_channel":["${ch}"]},"error_code":"${ERROR_CODES[k]}","error_type":"upstream_error","frt":-1,"is_stream":false,"status_code":${status}}\t`))
      })
      pieces.error401.push(typed(LogType.error, `status_code=401, invalid api key provided by upstream channel #${ch}`))
    }
    pieces.otherMid.push(bytes(`,"completion_ratio":${jsonNumber(model.completionRatio)},"frt":`))
  })
  return pieces
}

// 30 % of users have no ip, the others one of two; tokens of users not in the list are skipped.
function userTokenPieces (dims: Dimensions): UserTokenPieces {
  const userPos = new Map(dims.users.map((u, i) => [u.id, i]))
  const tokensOf: Array<Array<{ id: number, name: string }>> = dims.users.map(() => [])
  for (const t of dims.tokens) {
    const pos = userPos.get(t.userId)
    if (pos !== undefined) tokensOf[pos]!.push(t)
  }
  const pieces: UserTokenPieces = { userTail: [], tokenTail: [], tokenBase: new Int32Array(dims.users.length), tokenCount: new Int32Array(dims.users.length) }
  dims.users.forEach((u, i) => {
    const ips = u.id % 10 < 3 ? ['', ''] : [1, 2].map((n) => `10.${u.id % 250}.${Math.floor(u.id / 250) % 256}.${n}`)
    const head = `${u.id}\t${escapeCopyText(u.username)}\t${escapeCopyText(u.group)}\t`
    for (const ip of ips) pieces.userTail.push(bytes(`${head}${ip}\t0\t\n`))
    pieces.tokenBase[i] = pieces.tokenTail.length / 2
    pieces.tokenCount[i] = tokensOf[i]!.length
    for (const t of tokensOf[i]!) {
      for (const ip of ips) pieces.tokenTail.push(bytes(`${head}${ip}\t${t.id}\t${escapeCopyText(t.name)}\n`))
    }
  })
  return pieces
}

// The hot loop: one row per writeRow call, split by row kind into methods of one long-lived object
// (measured as fast as the single closure it was; the draws' order is the output, keep it).
class LogRowWriter {
  readonly rowMax: number
  private readonly pieces: RowPieces
  private readonly random: Random
  private readonly firstId: number
  private readonly start: number
  private readonly span: number
  private readonly rows: number
  private readonly skew: number
  private lastMinute = -1
  private minuteBytes = minuteDigits(0)

  constructor (pieces: RowPieces, opts: LogRowOptions) {
    this.pieces = pieces
    this.rowMax = pieces.rowMax
    this.random = logRowStream(opts.seed, opts.firstId)
    this.firstId = opts.firstId
    this.start = opts.start
    this.span = opts.end - opts.start
    this.rows = opts.rows
    this.skew = opts.skew
  }

  /** row `i` at `p`; returns the position after its newline */
  writeRow (b: Buffer, p: number, i: number): number {
    const r = this.random
    const id = this.firstId + i
    // inside the window and non-decreasing with i, since i + frac < i + 1
    const createdAt = this.start + Math.floor((i + r.next()) * this.span / this.rows)
    const u = Math.floor(this.pieces.nUsers * Math.pow(r.next(), this.skew))
    const rt = r.next()
    const rl = r.next()
    const rq = r.next()
    const ipv = r.next() < 0.3 ? 1 : 0

    p = putUint(b, p, id)
    b[p++] = TAB
    p = putUint(b, p, createdAt)
    if (rt < 0.90) return this.consumeRow(b, p, createdAt, u, rl, rq, ipv)
    if (rt < 0.93) return this.errorRow(b, p, id, createdAt, u, rl, rq, ipv)
    return this.accountRow(b, p, u, rt, rl, rq, ipv)
  }

  /** 90 %: a model, a channel, a token and a request id, tokens and cost */
  private consumeRow (b: Buffer, p: number, createdAt: number, u: number, rl: number, rq: number, ipv: number): number {
    const pc = this.pieces
    const r = this.random
    const m = Math.floor(pc.nModels * Math.pow(r.next(), 1.8))
    const mc = m * CHANNELS_PER_MODEL + Math.floor(r.next() * CHANNELS_PER_MODEL)
    const g = pc.userGroup[u]!
    const rp = r.next()
    const rc = r.next()
    p = put(b, p, pc.consumeContent[(m * pc.nGroups + g) * 2 + (rl < 0.5 ? 0 : 1)]!)
    p = putUint(b, p, Math.floor(100_000 * rq * rq * rq))
    b[p++] = TAB
    p = putUint(b, p, Math.floor(8000 * rp * rp))
    b[p++] = TAB
    p = putUint(b, p, Math.floor(8000 * rc * rc * rc))
    b[p++] = TAB
    p = putUint(b, p, Math.floor(60 * rq * rq))
    p = put(b, p, r.next() < 0.6 ? STREAM_TRUE : STREAM_FALSE)
    p = put(b, p, pc.modelChannel[mc]!)
    p = this.putRequestId(b, p, createdAt)
    p = put(b, p, pc.otherHead[mc]!)
    p = putUint(b, p, Math.floor(rc * 2048))
    p = put(b, p, pc.otherMid[m]!)
    p = putUint(b, p, Math.floor(200 + rq * 3000))
    p = put(b, p, pc.otherTail[g * pc.nModels + m]!)
    return this.putUserTail(b, p, u, ipv)
  }

  /** 3 %: like a consume row, with an upstream error's text and no tokens or cost */
  private errorRow (b: Buffer, p: number, id: number, createdAt: number, u: number, rl: number, rq: number, ipv: number): number {
    const pc = this.pieces
    const r = this.random
    const m = Math.floor(pc.nModels * Math.pow(r.next(), 1.8))
    const mc = m * CHANNELS_PER_MODEL + Math.floor(r.next() * CHANNELS_PER_MODEL)
    const errorKind = Math.floor(rl * ERROR_KINDS)
    switch (errorKind) {
      case 0:
        // unique per row: the low half is a bijection of the id
        p = put(b, p, ERROR_429_HEAD)
        p = putHex8(b, p, r.uint32())
        p = putHex8(b, p, Math.imul(id, 0x9e3779b1) >>> 0)
        p = put(b, p, ERROR_ID_TAIL)
        break
      case 1: p = put(b, p, ERROR_500); break
      case 2:
        p = put(b, p, ERROR_400_HEAD)
        p = putHex8(b, p, r.uint32())
        p = putHex8(b, p, r.uint32())
        p = putHex8(b, p, r.uint32())
        p = put(b, p, ERROR_ID_TAIL)
        break
      case 3: p = put(b, p, ERROR_503); break
      default: p = put(b, p, pc.error401[mc]!)
    }
    p = put(b, p, ERROR_NUMBERS)
    p = putUint(b, p, Math.floor(60 * rq * rq))
    p = put(b, p, STREAM_FALSE)
    p = put(b, p, pc.modelChannel[mc]!)
    p = this.putRequestId(b, p, createdAt)
    p = put(b, p, pc.errorOther[mc * ERROR_KINDS + errorKind]!)
    return this.putUserTail(b, p, u, ipv)
  }

  /** 7 %: top-up, admin change, registration: no model, channel, token or request id */
  private accountRow (b: Buffer, p: number, u: number, rt: number, rl: number, rq: number, ipv: number): number {
    let quota = 0
    if (rt < 0.96) {
      quota = 50 * Math.floor(100_000 * rq * rq * rq)
      const cents = Math.round(quota * 100 / QUOTA_PER_USD)
      p = put(b, p, rl < 0.5 ? TOP_UP_CODE_HEAD : TOP_UP_ONLINE_HEAD)
      p = putUint(b, p, Math.floor(cents / 100))
      b[p++] = DOT
      p = putDigits(b, p, cents % 100, 2)
      if (rl < 0.5) p = put(b, p, TOP_UP_CODE_TAIL)
      else b[p++] = TAB
    } else if (rt < 0.98) {
      p = put(b, p, MANAGE_HEAD)
      p = putUint(b, p, Math.floor(rq * 100))
      p = put(b, p, MANAGE_MID)
      p = putUint(b, p, Math.floor(rq * 200))
      b[p++] = TAB
    } else if (rl < 0.5) {
      p = put(b, p, SIGN_UP)
    } else {
      p = put(b, p, SIGN_UP_OAUTH_HEAD)
      p = putUint(b, p, 1 + Math.floor(rq * this.pieces.nUsers))
      b[p++] = TAB
    }
    p = putUint(b, p, quota)
    p = put(b, p, NO_REQUEST_MIDDLE)
    return put(b, p, this.pieces.userTail[u * 2 + ipv]!)
  }

  /** yyyyMMddHHmmss + 9 digits + 8 hex + 8 letters/digits */
  private putRequestId (b: Buffer, p: number, createdAt: number): number {
    const r = this.random
    const minute = Math.floor(createdAt / 60)
    // rows come in time order, so a minute's digits are encoded once
    if (minute !== this.lastMinute) { this.lastMinute = minute; this.minuteBytes = minuteDigits(minute) }
    p = put(b, p, this.minuteBytes)
    p = putDigits(b, p, createdAt - minute * 60, 2)
    p = putDigits(b, p, r.uint32() % 1_000_000_000, 9)
    p = putHex8(b, p, r.uint32())
    p = putAlnum4(b, p, r.uint32())
    return putAlnum4(b, p, r.uint32())
  }

  /** one of the user's tokens when it has any, else token 0 */
  private putUserTail (b: Buffer, p: number, u: number, ipv: number): number {
    const pc = this.pieces
    const nt = pc.tokenCount[u]!
    return put(b, p, nt === 0 ? pc.userTail[u * 2 + ipv]! : pc.tokenTail[(pc.tokenBase[u]! + Math.floor(this.random.next() * nt)) * 2 + ipv]!)
  }
}
