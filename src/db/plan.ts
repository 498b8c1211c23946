import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryId, QueryResult, RootOperationNode, UnknownRow } from 'kysely'

// How PostgreSQL plans a statement is chosen where the statement is built, with a marker the
// driver (db/driver.ts) reads:
//   query.withPlugin(prepared('token-page'))   parsed and planned once per connection, then, after
//                                               five custom plans, its generic plan if no dearer;
//   query.withPlugin(plannedPerCall)           planned for its actual values at every execution.
// A statement with no marker is planned per call (PostgreSQL's unnamed statement): a plan cached
// for values or table sizes that no longer hold is the failure that costs most, so caching a plan
// is something a statement asks for.

export type PlanPolicy = { kind: 'prepared', label: string } | { kind: 'per-call' }

const policies = new WeakMap<QueryId, PlanPolicy>()

class PlanPolicyPlugin implements KyselyPlugin {
  constructor (readonly policy: PlanPolicy) {}

  transformQuery (args: PluginTransformQueryArgs): RootOperationNode {
    policies.set(args.queryId, this.policy)
    return args.node
  }

  async transformResult (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}

const preparedPlugins = new Map<string, PlanPolicyPlugin>()

/**
 * Marks a statement to run as a named prepared statement. For statements whose best plan does not
 * depend on the values and whose tables do not swing from empty to large: a generic plan is then
 * kept and nothing is planned per request. The label names it in pg_prepared_statements.
 */
export function prepared (label: string): KyselyPlugin {
  let plugin = preparedPlugins.get(label)
  if (plugin === undefined) {
    plugin = new PlanPolicyPlugin({ kind: 'prepared', label })
    preparedPlugins.set(label, plugin)
  }
  return plugin
}

/** Marks a statement to be planned for its actual values at every execution. */
export const plannedPerCall: KyselyPlugin = new PlanPolicyPlugin({ kind: 'per-call' })

/** The policy a statement was built with; undefined when it states none (planned per call). */
export function planPolicyOf (queryId: QueryId): PlanPolicy | undefined {
  return policies.get(queryId)
}
