#!/usr/bin/env bash
# 2026-12-07 (night): main in long runs on Apache Kafka, 1,000/s offered for 240 s and for
# 600 s, then the ceiling search on both brokers; COMMIT (default 6e85e2d: the shared
# RocksDB budget and the heap freeze) from its own checkout, with this repository's venv.
#   bash docs/bench/2026-12-07-night/long/run.sh
#   COMMIT=58d8dbc DURATIONS=600 CEILING=no bash docs/bench/2026-12-07-night/long/run.sh
# (OUT: where the JSON summaries go, relative to the repository; default this folder;
#  START: the rate the ceiling search starts from, default 1200)
set -eu
commit=${COMMIT:-6e85e2d}
out=$(pwd)/${OUT:-docs/bench/2026-12-07-night/long}
py=$(pwd)/.venv/bin/python
dir=/tmp/stream-rec-$commit
[ -d "$dir" ] || git worktree add -f "$dir" "$commit" >&2
cd "$dir" && "$py" setup.py -q build_ext --inplace >/dev/null 2>&1
for duration in ${DURATIONS:-240 600}; do
  PYTHONPATH="$dir" "$py" -P -m stream_rec bench --broker kafka --rate 1000 --duration "$duration" \
      --warmup 3 --summary-json "$out/$commit-kafka-1000-${duration}s.json"
done
if [ "${CEILING:-yes}" = yes ]; then
  PYTHONPATH="$dir" "$py" -P -m stream_rec bench --broker tansu,kafka --rate "ceiling:${START:-1200}" \
      --duration 20 --warmup 3 --summary-json "$out/$commit-ceiling.json"
fi
