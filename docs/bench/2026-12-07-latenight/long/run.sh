#!/usr/bin/env bash
# 2026-12-07 (late night): 600 s at 1,000/s on Apache Kafka, then the ceiling search on both
# brokers from 1,500/s; COMMIT (default 1f383ed: faust's consumer thread on uvloop and
# deliveries inline in the drain loop) from its own checkout. The night's script with this
# folder as OUT.
#   bash docs/bench/2026-12-07-latenight/long/run.sh
set -eu
COMMIT=${COMMIT:-1f383ed} DURATIONS=${DURATIONS:-600} START=${START:-1500} \
    OUT=docs/bench/2026-12-07-latenight/long exec bash docs/bench/2026-12-07-night/long/run.sh
