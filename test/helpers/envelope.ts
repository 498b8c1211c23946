import type { Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'

type Assert = Pick<Test, 'equal' | 'match' | 'notOk'>

/** A 400 in the error envelope: success false, a message naming the parameter, no data. */
export function assertBadRequest (t: Assert, res: LightMyRequestResponse, names: RegExp, label?: string): void {
  const say = (what: string) => label === undefined ? what : `${label}: ${what}`
  t.equal(res.statusCode, 400, say('a 400'))
  const body = res.json()
  t.equal(body.success, false, say('success false'))
  t.match(body.message, names, say(`the message names it: ${body.message}`))
  t.notOk('data' in body, say('no data'))
}
