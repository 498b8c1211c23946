#!/usr/bin/env bash
# Issue 11's figures, in one run on one seeded table: the plain layout and day partitions side by
# side, each through the whole harness (every read route next to the naive baseline, then the
# purge of the oldest 30 % while readers run), the conversion of the table timed, and 1 against 2
# service processes (WORKERS) on the plain layout. Each copy of the template is made by CREATE
# DATABASE … TEMPLATE, so every run starts from the same rows.
#
#   npm run seed -- --rows 10000000 --drop-indexes --database-url postgres://…/bench_template
#   bash bench/layouts.sh bench_template 10M [admin-url] [bench options…]
#
# Reports: bench/out/layout-{plain,day}.json, bench/out/workers-{1,2}.json, bench/out/convert.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
template=${1:?usage: bench/layouts.sh <template-db> [rows] [admin-url] [bench options…]}
rows=${2:-10M}
admin=${3:-postgres://postgres@127.0.0.1:5432/postgres}
shift $(( $# < 3 ? $# : 3 ))
mkdir -p bench/out
db_url () { node -e "const u = new URL(process.argv[1]); u.pathname = '/' + process.argv[2]; console.log(u.toString())" "$admin" "$1"; }
psql_admin () { psql "$admin" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
copy_of () {
  psql_admin "drop database if exists $1 with (force)"
  psql_admin "create database $1 template $template"
}
bench () { npm run -s bench -- --rows "$rows" "$@"; }

only=${ONLY:-all}

# 1 and 2 service processes, the reads that scale with them, no purge (the table stays whole).
if [ "$only" = all ] || [ "$only" = workers ]; then
copy_of bench_workers
for n in 1 2; do
  WORKERS=$n bench --database-url "$(db_url bench_workers)" --only naive,self_list,token_logs,admin_list --skip-purge \
    --out "bench/out/workers-$n.json" "$@" | tee "bench/out/workers-$n.txt"
done
psql_admin "drop database bench_workers with (force)"
fi
[ "$only" = workers ] && exit 0

# The plain table: every route and today's purge (whole days and hours, then row batches).
copy_of bench_plain
bench --database-url "$(db_url bench_plain)" --out bench/out/layout-plain.json "$@" | tee bench/out/layout-plain.txt
psql_admin "drop database bench_plain with (force)"

# Day partitions: the conversion of the same table, then every route and the purge by partitions.
copy_of bench_day
started=$(date +%s)
node --import tsx src/cli/main.ts migrate --partitions day --database-url "$(db_url bench_day)" 2>&1 | tee bench/out/convert.txt
echo "conversion: $(( $(date +%s) - started )) s" | tee -a bench/out/convert.txt
bench --database-url "$(db_url bench_day)" --out bench/out/layout-day.json "$@" | tee bench/out/layout-day.txt
psql_admin "drop database bench_day with (force)"
