#!/usr/bin/env bash
# 2026-12-07: events per handled batch at `--rate max` on Kafka, for a checkout: start a
# 25 s bench run, find the serving worker (the one under 400 MB; the embedder holds the
# model), read its stream_rec_batch_size counters twice, 10 s apart (their difference is
# the batches and events handled in those 10 s). Run from the repository root:
#   bash docs/bench/2026-12-07-quiet/batch-sizes.sh .                 # main
#   git worktree add /tmp/pipe exp/batch-fills-while-handled
#   bash docs/bench/2026-12-07-quiet/batch-sizes.sh /tmp/pipe         # the branch
set -eu
tree=$(cd "$1" && pwd); py=$(pwd)/.venv/bin/python
(cd "$tree" && PYTHONPATH="$tree" "$py" -P -m stream_rec bench --broker kafka --rate max \
    --duration 25 --warmup 3 > /dev/null 2>&1 &)
sleep 22
pid=$(pgrep -f "stream_rec worker" | while read -r p; do
  [ "$(awk '/VmRSS/ {print $2}' /proc/"$p"/status)" -lt 400000 ] && echo "$p"; done | head -1)
port=$(ss -ltnp | grep "pid=$pid," | grep -o ':[0-9]*' | head -1 | tr -d :)
curl -s "localhost:$port/metrics" | grep -E '^stream_rec_batch_size_(sum|count)'
sleep 10
curl -s "localhost:$port/metrics" | grep -E '^stream_rec_batch_size_(sum|count)'
sleep 15
