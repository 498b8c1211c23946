// Seeded PRNG for the generator: sfc32 (Chris Doty-Humphrey's Small Fast Counter), state seeded
// through splitmix32 so that nearby seeds give unrelated streams. Math.random cannot be seeded,
// and the same options must give the same rows.

function splitmix32 (x: number): number {
  x = (x + 0x9e3779b9) | 0
  let z = x
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

export class Random {
  private a: number
  private b: number
  private c: number
  private d: number

  /** `stream` separates independent sequences drawn from one user-given seed. */
  constructor (seed: number, stream = 0) {
    const s = splitmix32(Math.imul(seed | 0, 0x2545f491) ^ splitmix32(stream | 0) ^ splitmix32(Math.floor(seed / 2 ** 32)))
    this.a = splitmix32(s)
    this.b = splitmix32(this.a ^ 0x1b873593)
    this.c = splitmix32(this.b ^ 0xcc9e2d51)
    this.d = 1
    // the first outputs of a fresh state are poorly mixed
    for (let i = 0; i < 15; i++) this.uint32()
  }

  uint32 (): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** uniform in [0, 1) */
  next (): number {
    return this.uint32() / 4294967296
  }

  /** uniform integer in [0, n) */
  int (n: number): number {
    return Math.floor(this.next() * n)
  }
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

export function randomAlnum (random: Random, length: number): string {
  let s = ''
  for (let i = 0; i < length; i++) s += ALNUM[random.int(ALNUM.length)]
  return s
}
