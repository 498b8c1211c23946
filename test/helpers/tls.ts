import { execFile } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

type Tap = { teardown: (fn: () => unknown) => void }

export interface TestCertificate {
  dir: string
  certFile: string
  keyFile: string
  /** the certificate itself, which is its own CA: what a client trusts */
  ca: Buffer
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI in a temp folder removed at teardown. */
export async function makeCertificate (t: Tap): Promise<TestCertificate> {
  const dir = mkdtempSync(path.join(tmpdir(), 'log-service-tls-'))
  // nginx's workers (www-data when nginx starts as root) live under this folder too.
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const certFile = path.join(dir, 'cert.pem')
  const keyFile = path.join(dir, 'key.pem')
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'
  ])
  return { dir, certFile, keyFile, ca: readFileSync(certFile) }
}
