#!/usr/bin/env bash
# 2026-12-07: the pull API's latest-recs table written where a rec is sent (4c5c2ef, "new")
# against the read-back of the recs topic (7c45bee, "old"), both with the table on (the
# default), on Apache Kafka, back to back: fixed rates for 20 s in alternating order, two
# rounds each, then a ceiling search each way. Run from the repository root at 4c5c2ef or
# later; OLD is a checkout of 7c45bee (made here with `git worktree` when missing).
# Writes JSON summaries into this folder.
set -eu
out=docs/bench/2026-12-07/latest-recs-in-stream; py=$(pwd)/${PYTHON:-.venv/bin/python}
old=${OLD:-/tmp/stream-rec-7c45bee}
[ -d "$old" ] || git worktree add -f "$old" 7c45bee

run() {  # TREE NAME ARGS...: one bench run of the code in TREE
  tree=$1 name=$2; shift 2
  (cd "$tree" && PYTHONPATH="$tree" "$py" -P -m stream_rec bench --broker kafka "$@" \
      --summary-json "$OLDPWD/$out/$name.json")
}

fixed() {  # RATE "ORDER": two alternating rounds at a fixed rate
  for r in 1 2; do
    for v in $2; do
      if [ "$v" = old ]; then tree=$old; else tree=$(pwd); fi
      run "$tree" "r$r-$1-$v" --rate "$1" --duration 20 --warmup 3
    done
  done
}

fixed 200 "old new"
fixed 260 "new old"
run "$old" ceiling-old --rate ceiling:500 --duration 15 --warmup 3
run "$(pwd)" ceiling-new --rate ceiling:500 --duration 15 --warmup 3
