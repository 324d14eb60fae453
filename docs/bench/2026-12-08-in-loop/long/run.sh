#!/usr/bin/env bash
# 2026-12-08: 600 s at 1,000/s on Apache Kafka, then the ceiling search on both brokers
# from 1,780/s; COMMIT (default 34ee5ac: faust's consumer on the worker's own loop) from
# its own checkout. The 2026-12-07 night script with this folder as OUT.
#   bash docs/bench/2026-12-08-in-loop/long/run.sh
set -eu
COMMIT=${COMMIT:-34ee5ac} DURATIONS=${DURATIONS:-600} START=${START:-1780} \
    OUT=docs/bench/2026-12-08-in-loop/long exec bash docs/bench/2026-12-07-night/long/run.sh
