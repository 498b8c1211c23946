import { Writable } from 'node:stream'

// Every secret the tests hand out (access tokens, API keys, configured keys, database URLs) is
// registered here, and every test app's log output is searched for all of them: over the suite,
// that is the logs of every request the tests make.

const secrets = new Set<string>()

/** A secret the logs must never contain. Short strings are ignored: they would match by chance. */
export function registerSecret (value: string | undefined): void {
  if (value !== undefined && value.length >= 12) secrets.add(value)
}

export interface LogCapture {
  stream: Writable
  /** the captured lines that contain a registered secret, the secret masked */
  leaks: () => string[]
  lines: () => string[]
}

/** A log stream that keeps what it is given, for a search once the app is closed. */
export function captureLogs (): LogCapture {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString())
      done()
    }
  })
  return {
    stream,
    lines: () => lines,
    leaks: () => {
      const found: string[] = []
      for (const line of lines) {
        for (const secret of secrets) {
          if (line.includes(secret)) found.push(line.replaceAll(secret, `[secret ${secret.slice(0, 3)}…]`).trim())
        }
      }
      return found
    }
  }
}
