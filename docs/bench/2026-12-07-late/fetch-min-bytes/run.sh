#!/usr/bin/env bash
# 2026-12-07 (late): the Kafka consumer fetching at least 8 KiB or waiting 5 ms
# (fetch.min.bytes 8192, fetch.max.wait 5 ms; branch exp/fetch-min-bytes, f9129e5) against
# main (988008d), back to back at 1,000/s on Kafka, then each one's ceiling search from
# 1,500/s. Not landed: it saves CPU per rec at 1,000/s but adds ~9 ms to p50 and does not
# raise the ceiling.
#   bash docs/bench/2026-12-07-late/fetch-min-bytes/run.sh
set -eu
out=docs/bench/2026-12-07-late/fetch-min-bytes
py=$(pwd)/.venv/bin/python
ROUNDS=2 bash bench/ab_commits.sh 988008d f9129e5 "$out" kafka "1000" none
for commit in 988008d f9129e5; do
  dir=/tmp/stream-rec-$commit  # made and built by ab_commits.sh
  PYTHONPATH="$dir" "$py" -P -m stream_rec bench --broker kafka --rate ceiling:1500 \
      --duration 20 --warmup 3 --summary-json "$out/$commit-ceiling.json"
done
