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

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema }) => {
  const validate: ValidateFunction = ajv.compile(schema)
  const check = (data: unknown) => {
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
