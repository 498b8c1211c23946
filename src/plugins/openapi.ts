import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'

// The OpenAPI document, generated from the route schemas: clients are generated from it. Served
// at /openapi.json. Registered before the routes, so that it sees every one of them.

export interface OpenapiPluginOptions {
  /** where clients reach the service: the document's one server */
  publicUrl: string
  /** operations answered by a plugin rather than a route of ours (the CORS preflight), by path and method */
  extraOperations?: Record<string, Record<string, object>>
}

export default fp<OpenapiPluginOptions>(async function openapiPlugin (app, opts) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'LLM gateway log service',
        description: 'The /api/log routes of an LLM API gateway (new-api compatible). Every response is the envelope {success, message, data?}, ' +
          'errors included: a path that does not exist answers 404 with code LOG_NOT_FOUND (the `default` response of every operation).',
        version: '1.0.0',
        contact: { name: 'LLM gateway log service maintainers' }
      },
      servers: [{ url: opts.publicUrl, description: 'this service' }],
      tags: [
        { name: 'admin', description: 'role admin (10) or root (100)' },
        { name: 'user', description: 'any enabled user, own rows only' },
        { name: 'token', description: 'public, by API key, CORS' },
        { name: 'ingest', description: 'writing rows: admin, or the ingest key' },
        { name: 'ops', description: 'operations' }
      ],
      components: {
        securitySchemes: {
          accessToken: { type: 'http', scheme: 'bearer', description: "the user's access token (users.access_token); a bare token also works" },
          newApiUser: { type: 'apiKey', in: 'header', name: 'New-Api-User', description: 'the id of the user the access token belongs to' },
          // The token route's `key` query parameter is a parameter, not a scheme: as a scheme, the
          // document generator drops it from the parameters and generated clients cannot send it.
          apiKeyHeader: { type: 'http', scheme: 'bearer', description: 'an API key (sk-…); preferred over the key query parameter' },
          ingestKey: { type: 'http', scheme: 'bearer', description: 'the INGEST_KEY the service is configured with: may write rows (POST /api/log/) and nothing else' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'the METRICS_TOKEN the service is configured with, if any: needed by GET /metrics then' }
        }
      }
    },
    // Name shared components after their $id, so generated clients get ErrorResponse, UserLogItem…
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject
      const doc = document.openapiObject
      for (const [path, operations] of Object.entries(opts.extraOperations ?? {})) {
        doc.paths = { ...doc.paths, [path]: { ...doc.paths?.[path], ...operations } }
      }
      return doc
    }
  })

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'openapi', fastify: '5.x' })
