#!/usr/bin/env node
// The `log-service` command (package.json "bin"): the TypeScript CLI, run through tsx's loader.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../src/cli/main.ts')
await main(process.argv.slice(2))
