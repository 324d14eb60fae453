#!/usr/bin/env bash
# 2026-12-07 (late): main in long runs on Apache Kafka, 1,000/s offered (DURATIONS, default
# 240 and 600 s), then the ceiling search on both brokers; COMMIT (default dd139e7: the
# candidates' glue in C) from its own checkout, with this repository's venv. The night's
# script with this folder as OUT.
#   DURATIONS=600 bash docs/bench/2026-12-07-late/long/run.sh                  # dd139e7
#   COMMIT=11bcd46 DURATIONS=" " bash docs/bench/2026-12-07-late/long/run.sh   # ceilings only
set -eu
COMMIT=${COMMIT:-dd139e7} OUT=docs/bench/2026-12-07-late/long \
    exec bash docs/bench/2026-12-07-night/long/run.sh
