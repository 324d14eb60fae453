#!/usr/bin/env bash
# 2026-12-07 04:03-04:16 UTC: what the pull API's latest-recs table costs a worker, on Apache
# Kafka: fixed rates, 20 s, the table on (default) and STREAM_REC_LATEST_RECS=off alternating,
# two rounds each (200/s: on first; 260/s: off first), and between them a ceiling search
# each way. Run from the repository root; writes JSON summaries into this folder.
set -eu
out=docs/bench/2026-12-07/latest-recs; py=${PYTHON:-.venv/bin/python}

fixed() {  # RATE NAME_INFIX "ORDER": two alternating rounds at a fixed rate
  for r in 1 2; do
    for t in $3; do
      STREAM_REC_LATEST_RECS=$t "$py" -m stream_rec bench --broker kafka --rate "$1" \
          --duration 20 --warmup 3 --summary-json "$out/r$r$2-$t.json"
    done
  done
}

fixed 200 "" "on off"
for t in off on; do
  STREAM_REC_LATEST_RECS=$t "$py" -m stream_rec bench --broker kafka --rate ceiling:300 \
      --duration 15 --warmup 3 --summary-json "$out/ceiling-$t.json"
done
fixed 260 "-260" "off on"
