import { BadParameterError } from '../errors.js'

// A cursor is the (created_at, id) of the last row of a page, base64url-encoded: opaque to
// clients, so the encoding may change without breaking them.

export interface CursorPosition {
  createdAt: number
  id: number
}

export function encodeCursor (row: { created_at: number, id: number }): string {
  return Buffer.from(`${row.created_at}.${row.id}`).toString('base64url')
}

export function decodeCursor (cursor: string): CursorPosition {
  const match = /^(-?[0-9]{1,16})\.([0-9]{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString())
  const createdAt = Number(match?.[1])
  const id = Number(match?.[2])
  if (match === null || !Number.isSafeInteger(createdAt) || !Number.isSafeInteger(id)) {
    throw new BadParameterError('cursor is invalid (pass next_cursor of a previous page)')
  }
  return { createdAt, id }
}
