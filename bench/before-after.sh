#!/usr/bin/env bash
# The benchmark of one commit and of the work tree, one right after the other, on the same data:
# seeds a template database once, copies it for each run (the purge phase deletes 30 %), runs
# `npm run bench` in a worktree of BEFORE_REF and then here (ORDER=after-first: the other way
# round; SUFFIX names a second pair of reports). Both JSON reports land in bench/out/.
#
#   bash bench/before-after.sh <before-ref> [rows] [admin-url]
#   bash bench/before-after.sh 5746f45 1000000 postgres://postgres@127.0.0.1:5432/postgres [bench options…]
set -euo pipefail
cd "$(dirname "$0")/.."
before_ref=${1:?usage: bench/before-after.sh <before-ref> [rows] [admin-url]}
rows=${2:-1000000}
admin=${3:-postgres://postgres@127.0.0.1:5432/postgres}
shift $(( $# < 3 ? $# : 3 ))
here=$PWD
mkdir -p bench/out
db_url () { node -e "const u = new URL(process.argv[1]); u.pathname = '/' + process.argv[2]; console.log(u.toString())" "$admin" "$1"; }
psql_admin () { psql "$admin" -v ON_ERROR_STOP=1 -qAt -c "$1"; }

worktree=$(mktemp -d)/before
git worktree add --detach "$worktree" "$before_ref" >/dev/null
trap 'git worktree remove --force "$worktree"' EXIT
ln -s "$PWD/node_modules" "$worktree/node_modules"

# KEEP_TEMPLATE=1 reuses a bench_template seeded by an earlier run.
if [ "${KEEP_TEMPLATE:-}" != 1 ]; then
  psql_admin "drop database if exists bench_template with (force)"
  psql_admin "create database bench_template"
  npm run -s seed -- --rows "$rows" --drop-indexes --database-url "$(db_url bench_template)"
fi

for side in before after; do
  psql_admin "drop database if exists bench_$side with (force)"
  psql_admin "create database bench_$side template bench_template"
done

run_before () { (cd "$worktree" && npm run -s bench -- --database-url "$(db_url bench_before)" --rows "$rows" --out "$here/bench/out/before$suffix.json" "$@") | tee "bench/out/before$suffix.txt"; }
run_after () { npm run -s bench -- --database-url "$(db_url bench_after)" --rows "$rows" --out "$here/bench/out/after$suffix.json" "$@" | tee "bench/out/after$suffix.txt"; }
# ORDER=after-first runs the tree first: two runs in both orders (ABBA) cancel a drift of the machine.
suffix=${SUFFIX:-}
if [ "${ORDER:-}" = after-first ]; then
  run_after "$@"
  run_before "$@"
else
  run_before "$@"
  run_after "$@"
fi
