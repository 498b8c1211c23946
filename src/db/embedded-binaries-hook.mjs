// A module resolve hook (node:module register): the embedded server's platform package resolves
// to a copy the postgres user can reach. Plain JavaScript: hooks load before any TypeScript loader.
let redirect

export async function initialize (data) {
  redirect = data
}

export async function resolve (specifier, context, next) {
  if (redirect !== undefined && specifier === redirect.specifier) return { url: redirect.url, shortCircuit: true }
  return await next(specifier, context)
}
