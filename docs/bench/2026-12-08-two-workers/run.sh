#!/usr/bin/env bash
# 2026-12-08: the ceiling search with two worker processes (one per core) on both brokers,
# from START (default 2,000/s); the broker, load generator and recs reader share the same
# 2 cores. Runs this checkout's code and names the files by its commit.
#   bash docs/bench/2026-12-08-two-workers/run.sh
set -eu
cd "$(dirname "$0")/../../.."
OUT=docs/bench/2026-12-08-two-workers
commit=$(git rev-parse --short HEAD)
.venv/bin/stream-rec bench --broker kafka,tansu --workers 2 --rate "ceiling:${START:-2000}" \
    --duration 20 --warmup 3 --summary-json "$OUT/$commit-ceiling.json" 2>&1 | tee "$OUT/$commit-ceiling.log"
