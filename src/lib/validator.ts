import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

// Fastify's own Ajv setup (coercion for query strings, defaults, no allErrors) with two changes:
// - removeAdditional 'all': unknown parameters are dropped even where a schema does not say
//   additionalProperties: false, so a route never sees a parameter it did not declare;
// - a number that coercion made from "Infinity" or "1e400" is refused: Ajv coerces it and then
//   skips minimum/maximum for a non-finite value, which would reach PostgreSQL as a 500.

const ajv = new Ajv({
  coerceTypes: 'array',
  useDefaults: true,
  removeAdditional: 'all',
  allErrors: false,
  strict: false
})
addFormats.default(ajv)

function firstNonFinite (data: unknown, path = ''): string | undefined {
  if (typeof data === 'number') return Number.isFinite(data) ? undefined : path
  if (data !== null && typeof data === 'object') {
    for (const [key, value] of Object.entries(data)) {
      const found = firstNonFinite(value, `${path}/${key}`)
      if (found !== undefined) return found
    }
  }
  return undefined
}

/** Decimal digits with an optional minus sign: what a query string's integer may be. */
const DECIMAL_INTEGER = /^-?[0-9]+$/

/** The top-level properties a query schema types as integers. */
function integerProperties (schema: object): string[] {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {}
  return Object.entries(properties).filter(([, p]) => p.type === 'integer').map(([name]) => name)
}

/**
 * Ajv coerces a query string's integer with Number(), which reads '0x10', ' 5', '1e1' and '0b11'
 * as numbers and '  ' as 0. The contract's integers are decimal digits: anything else is refused
 * before coercion, as Ajv would refuse a non-number.
 */
function firstNonDecimal (data: unknown, names: string[]): ErrorObject | undefined {
  if (data === null || typeof data !== 'object') return undefined
  for (const name of names) {
    const value = (data as Record<string, unknown>)[name]
    if (typeof value === 'string' && !DECIMAL_INTEGER.test(value)) {
      return { instancePath: `/${name}`, schemaPath: `#/properties/${name}/type`, keyword: 'type', params: { type: 'integer' }, message: 'must be integer' }
    }
  }
  return undefined
}

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) => {
  const validate: ValidateFunction = ajv.compile(schema)
  const integers = httpPart === 'querystring' ? integerProperties(schema) : []
  const check = (data: unknown) => {
    const lenient = firstNonDecimal(data, integers)
    if (lenient !== undefined) {
      check.errors = [lenient]
      return false
    }
    if (!validate(data)) {
      check.errors = validate.errors
      return false
    }
    const path = firstNonFinite(data)
    if (path !== undefined) {
      check.errors = [{ instancePath: path, schemaPath: '#', keyword: 'type', params: {}, message: 'must be a finite number' }]
      return false
    }
    check.errors = null
    return true
  }
  check.errors = null as ErrorObject[] | null | undefined
  return check
}

// Bodies are checked as sent: no coercion, no defaults, unknown properties refused (the schemas
// say additionalProperties: false), so that a row is stored exactly as the client wrote it.
const strictAjv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, strict: false })
addFormats.default(strictAjv)

/**
 * Ajv's issue as a sentence naming what it is about: `page_size must be <= 100`, `quota is
 * required`, `unknown parameter x`. `whole` names the value itself, `member` what its properties are.
 */
export function describeIssue (issue: Pick<ErrorObject, 'instancePath' | 'keyword' | 'params' | 'message'>, whole = 'value', member = 'field'): string {
  const path = issue.instancePath.replace(/^\//, '').replace(/\//g, '.')
  if (issue.keyword === 'required') return `${path === '' ? '' : `${path}.`}${String(issue.params.missingProperty)} is required`
  if (issue.keyword === 'additionalProperties') return `unknown ${member} ${String(issue.params.additionalProperty)}`
  return `${path === '' ? whole : path} ${issue.message ?? 'is invalid'}`
}

/** A strict validator: returns undefined when `data` is valid, else its first issue. */
export function compileStrict<T> (schema: object): (data: unknown) => ErrorObject | undefined {
  const validate = strictAjv.compile<T>(schema)
  return (data) => validate(data) ? undefined : (validate.errors?.[0] ?? { instancePath: '', schemaPath: '#', keyword: 'type', params: {}, message: 'is invalid' })
}
