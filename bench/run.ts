// npm run bench -- --database-url postgres://… [--duration 10] [--rows 10M] …  (see --help)
import { runBench } from './harness.js'
import { parseOptions, SetupError, USAGE, UsageError } from './options.js'

try {
  const options = parseOptions(process.argv.slice(2))
  if (options === 'help') {
    process.stdout.write(USAGE + '\n')
  } else {
    const { table } = await runBench(options)
    process.stdout.write('\n' + table + '\n')
  }
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}\n`)
    process.exitCode = 2
  } else if (err instanceof SetupError) {
    process.stderr.write(`bench: ${err.message}\n`)
    process.exitCode = 2
  } else {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
