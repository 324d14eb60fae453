#!/usr/bin/env bash
# 2026-12-07 (night): the worker's memory in long runs before and after one shared RocksDB
# budget (ecafb16: a block cache and memtables per table partition; 5c0c815: one 4 MiB
# cache and one 8 MiB memtable budget for all of them). Each commit from its own checkout
# (built in place), one after the other on Apache Kafka, 1,000/s offered for 240 s.
#   bash docs/bench/2026-12-07-night/table-memory/run.sh
set -eu
out=docs/bench/2026-12-07-night/table-memory
py=$(pwd)/.venv/bin/python
for commit in ecafb16 5c0c815; do
  dir=/tmp/stream-rec-$commit
  [ -d "$dir" ] || git worktree add -f "$dir" "$commit" >&2
  (cd "$dir" && "$py" setup.py -q build_ext --inplace >/dev/null 2>&1)
done
for commit in ecafb16 5c0c815; do
  dir=/tmp/stream-rec-$commit
  (cd "$dir" && PYTHONPATH="$dir" "$py" -P -m stream_rec bench --broker kafka --rate 1000 \
      --duration 240 --warmup 3 --summary-json "$OLDPWD/$out/$commit-1000-240s.json")
done
