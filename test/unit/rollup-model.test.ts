import t from 'tap'
import { assertRollupModel, DAY, grainsOf, HOUR, keyColumns, MINUTE, ROLLUPS, rollupAt } from '../../src/queries/rollups/model.js'
import { purgeableWhole } from '../../src/queries/rollups/purge.js'

t.test('the model as declared', async (t) => {
  t.doesNotThrow(() => assertRollupModel(ROLLUPS))
  t.strictSame(grainsOf('site').map((r) => r.table), ['logs_stat_minutely', 'logs_stat_hourly'], 'site grains, finest first')
  t.strictSame(grainsOf('user').map((r) => r.table), ['logs_stat_hourly_user', 'logs_stat_daily_user'], 'user grains, finest first')
  t.strictSame(keyColumns(rollupAt('user', DAY)!), ['user_id', 'day', 'type'])
  t.strictSame(keyColumns(rollupAt('site', MINUTE)!), ['minute', 'type'])
  t.equal(rollupAt('site', DAY), undefined)
  t.ok(purgeableWhole(DAY), 'a day can be purged whole')
  t.ok(purgeableWhole(HOUR), 'an hour can be purged whole')
  t.notOk(purgeableWhole(MINUTE), 'a minute cannot: the user scope has no grain that fine')
  t.notOk(purgeableWhole(90), 'nor a minute and a half')
})

t.test('the rules the readers, the fold and the purge rely on', async (t) => {
  const site = { table: 'site_m', scope: 'site', unit: 'minute', seconds: MINUTE } as const
  const user = { table: 'user_h', scope: 'user', unit: 'hour', seconds: HOUR } as const
  t.doesNotThrow(() => assertRollupModel([site, user, { table: 'site_d', scope: 'site', unit: 'day', seconds: DAY }]), 'a daily site grain is one more entry')
  t.throws(() => assertRollupModel([site]), /no grain for scope user/)
  t.throws(() => assertRollupModel([site, user, { table: 'site_90', scope: 'site', unit: 'x', seconds: 90 }]), /does not nest/)
  t.throws(() => assertRollupModel([site, user, { table: 'site_m2', scope: 'site', unit: 'm2', seconds: MINUTE }]), /does not nest/)
  t.throws(() => assertRollupModel([{ table: 's', scope: 'site', unit: 'half', seconds: 30 }, user]), /delta minutes/)
})
