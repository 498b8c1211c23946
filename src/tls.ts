// HTTPS served by the service itself, and the start-up warning when nothing protects the credentials.
import { readFileSync } from 'node:fs'
import type { ServerOptions } from 'node:https'
import { parseTrustProxy, type Config } from './config.js'

type TlsConfig = Pick<Config, 'TLS_CERT_FILE' | 'TLS_KEY_FILE'>

/** A TLS file that cannot be read: its message is one sentence an operator can act on. */
export class TlsFileError extends Error {}

function readPem (variable: 'TLS_CERT_FILE' | 'TLS_KEY_FILE', file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))
    throw new TlsFileError(`cannot read ${variable} ${file} (${reason}): point it at a readable PEM file, or unset TLS_CERT_FILE and TLS_KEY_FILE to serve plain HTTP`)
  }
}

/**
 * Fastify's `https` option from TLS_CERT_FILE and TLS_KEY_FILE, or undefined to serve plain HTTP.
 * loadConfig has already refused one without the other. The files are read once: a renewed
 * certificate takes a restart.
 */
export function httpsOptions (config: TlsConfig): ServerOptions | undefined {
  if (config.TLS_CERT_FILE === undefined || config.TLS_KEY_FILE === undefined) return undefined
  return { cert: readPem('TLS_CERT_FILE', config.TLS_CERT_FILE), key: readPem('TLS_KEY_FILE', config.TLS_KEY_FILE) }
}

/**
 * The warning to log at start-up, or undefined: in production, with neither TLS of its own nor a
 * trusted proxy in front (which is where TLS would end), access tokens and API keys reach the
 * service in clear text.
 */
export function clearTextWarning (config: Pick<Config, 'NODE_ENV' | 'TRUST_PROXY'> & TlsConfig): string | undefined {
  if (config.NODE_ENV !== 'production') return undefined
  if (config.TLS_CERT_FILE !== undefined && config.TLS_KEY_FILE !== undefined) return undefined
  if (parseTrustProxy(config.TRUST_PROXY) !== false) return undefined
  return 'serving plain HTTP in production: access tokens and API keys travel in clear text; ' +
    'set TLS_CERT_FILE and TLS_KEY_FILE, or run behind a TLS proxy (deploy/nginx.conf) with TRUST_PROXY set to its address'
}
