#!/usr/bin/env bash
# 2026-12-07 (quiet machine): the batch wait (STREAM_REC_BATCH_MAX_WAIT_MS, default 5) on
# current main. First a sweep at 1,000/s offered on Apache Kafka (5, 15, 2, 30, 1, 0.5 ms:
# files kafka-1000-wait*-sweep.json), then 5 against 2 ms on both brokers at `max`, 1,000/s
# and 150/s (files BROKER-RATE-WAIT.json). 20 s measured, 3 s warm-up, one worker.
# Run from the repository root; writes JSON summaries into this folder.
set -eu
out=docs/bench/2026-12-07-quiet/batch-wait; py=${PYTHON:-.venv/bin/python}
for wait in 5 15 2 30 1 0.5; do
  STREAM_REC_BATCH_MAX_WAIT_MS=$wait "$py" -m stream_rec bench --broker kafka --rate 1000 \
      --duration 20 --warmup 3 --summary-json "$out/kafka-1000-wait$wait-sweep.json"
done
for broker in tansu kafka; do
  for rate in max 1000 150; do
    for wait in 5 2; do
      STREAM_REC_BATCH_MAX_WAIT_MS=$wait "$py" -m stream_rec bench --broker $broker \
          --rate $rate --duration 20 --warmup 3 --summary-json "$out/$broker-$rate-$wait.json"
    done
  done
done
