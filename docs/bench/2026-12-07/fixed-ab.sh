#!/usr/bin/env bash
# 2026-12-07 02:09-02:15 UTC: fixed 300/s on Apache Kafka, 15 s, back to back.
# (1) OpenBLAS threads: the default (2 on this machine) against OPENBLAS_NUM_THREADS=1, two rounds;
# (2) the code of 2026-12-06 morning (0246fb8) against main (25c168b's serving code), two rounds.
# Run from the repository root; writes JSON summaries into this folder.
set -eu
here=$(pwd); out=docs/bench/2026-12-07; py=${PYTHON:-$here/.venv/bin/python}
for r in 1 2; do
  for t in default 1; do
    if [ "$t" = 1 ]; then export OPENBLAS_NUM_THREADS=1; else unset OPENBLAS_NUM_THREADS; fi
    "$py" -m stream_rec bench --broker kafka --rate 300 --duration 15 --warmup 3 --summary-json "$out/r$r-$t.json"
  done
done
unset OPENBLAS_NUM_THREADS
git worktree add /tmp/old 0246fb8
for r in 1 2; do
  for side in old new; do
    tree=$here; [ "$side" = old ] && tree=/tmp/old
    (cd "$tree" && PYTHONPATH="$tree" "$py" -P -m stream_rec bench --broker kafka --rate 300 --duration 15 \
        --warmup 3 --summary-json "$here/$out/ab-r$r-$side.json")
  done
done
git worktree remove --force /tmp/old
