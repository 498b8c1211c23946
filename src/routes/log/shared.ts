export const SEARCH_LIMIT = 100

// OpenAPI security requirements (the schemes are declared in plugins/openapi.ts).
export const userSecurity: Array<Record<string, string[]>> = [{ accessToken: [], newApiUser: [] }]
// The key as Authorization, or (the empty requirement) as the route's own `key` query parameter.
export const apiKeySecurity: Array<Record<string, string[]>> = [{ apiKeyHeader: [] }, {}]
