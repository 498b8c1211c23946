import fp from 'fastify-plugin'
import swaggerUi from '@fastify/swagger-ui'

// GET /docs: Swagger UI over the document the openapi plugin builds. Every script, style and image
// comes from the npm package through this service, never a CDN: the page must work where the
// service runs (an intranet, a test box without internet). Public, like /openapi.json: the
// document is no secret and "try it" sends the caller's own credentials.

export default fp(async function docsPlugin (app) {
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // "Try it out" sends requests to the document's servers (PUBLIC_URL), so the page works behind
    // a proxy; no validator badge, which would fetch validator.swagger.io.
    validatorUrl: false,
    uiConfig: {
      docExpansion: 'list',
      deepLinking: true,
      displayOperationId: true,
      displayRequestDuration: true,
      defaultModelsExpandDepth: 0
    },
    theme: { title: 'LLM gateway log service: API reference' }
  })
}, { name: 'docs', fastify: '5.x', dependencies: ['openapi'] })
