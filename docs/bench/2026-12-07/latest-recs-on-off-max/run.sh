#!/usr/bin/env bash
# 2026-12-07: what the pull API's table still costs now that it is written where the rec is
# sent: the current code with STREAM_REC_LATEST_RECS on (the default) and off, alternating,
# at the worker's limit (offered rate `max`), 20 s, three rounds, Apache Kafka. Run from the
# repository root; writes JSON summaries into this folder.
set -eu
out=docs/bench/2026-12-07/latest-recs-on-off-max; py=${PYTHON:-.venv/bin/python}
for round in 1 2 3; do
  for table in on off; do
    STREAM_REC_LATEST_RECS=$table "$py" -m stream_rec bench --broker kafka --rate max \
        --duration 20 --warmup 3 --summary-json "$out/r$round-$table.json"
  done
done
