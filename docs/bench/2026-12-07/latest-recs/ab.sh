#!/usr/bin/env bash
# 2026-12-07: what the pull API's latest-recs table costs a worker. Fixed 200/s on Apache Kafka,
# 20 s, the table on (default) against STREAM_REC_LATEST_RECS=off, alternating, two rounds.
# Run from the repository root; writes JSON summaries into this folder.
set -eu
out=docs/bench/2026-12-07/latest-recs; py=${PYTHON:-.venv/bin/python}
for r in 1 2; do
  for t in on off; do
    STREAM_REC_LATEST_RECS=$t "$py" -m stream_rec bench --broker kafka --rate 200 --duration 20 \
        --warmup 3 --summary-json "$out/r$r-$t.json"
  done
done
# then the ceiling search, the table off and on, back to back (Kafka):
for t in off on; do
  STREAM_REC_LATEST_RECS=$t "$py" -m stream_rec bench --broker kafka --rate ceiling:300 --duration 15 \
      --warmup 3 --summary-json "$out/ceiling-$t.json"
done
# and fixed 260/s, alternating off/on, two rounds:
for r in 1 2; do
  for t in off on; do
    STREAM_REC_LATEST_RECS=$t "$py" -m stream_rec bench --broker kafka --rate 260 --duration 20 \
        --warmup 3 --summary-json "$out/r$r-260-$t.json"
  done
done
