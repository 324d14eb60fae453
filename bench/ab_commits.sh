#!/usr/bin/env bash
# Two commits' workers on one broker, back to back: fixed rates for 20 s in alternating
# order (ROUNDS rounds per rate, default 2; the first rate starts with OLD, the next with
# NEW, ...; a rate may be `max`), then a ceiling search each way (CEILING `none` skips
# it). Each commit runs from its own checkout (git worktree under /tmp), with this
# repository's virtualenv. Writes one JSON summary per run into OUT and
# prints each run's table.
#
#   bash bench/ab_commits.sh OLD NEW OUT [BROKER] [RATES] [CEILING]
#   bash bench/ab_commits.sh 4c5c2ef 426d808 docs/bench/2026-12-07/drain-inline kafka "200 260" 500
#   ROUNDS=4 bash bench/ab_commits.sh 7c45bee 426d808 OUT kafka max none
set -eu
old=$1 new=$2 out=$3 broker=${4:-kafka} rates=${5:-"200 260"} ceiling=${6:-500}
py=$(pwd)/${PYTHON:-.venv/bin/python}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
mkdir -p "$out"

tree() {  # COMMIT: its checkout with its C kernels built, made when missing
  dir=/tmp/stream-rec-$1
  if [ ! -d "$dir" ]; then
    git worktree add -f "$dir" "$1" >&2
    (cd "$dir" && "$py" setup.py -q build_ext --inplace >/dev/null 2>&1)
  fi
  echo "$dir"
}

run() {  # COMMIT NAME ARGS...: one bench run of COMMIT's code
  dir=$(tree "$1") name=$2; shift 2
  (cd "$dir" && PYTHONPATH="$dir" "$py" -P -m stream_rec bench --broker "$broker" "$@" \
      --summary-json "$out/$name.json")
}

order="old new"
for rate in $rates; do
  for round in $(seq "${ROUNDS:-2}"); do
    for side in $order; do
      if [ "$side" = old ]; then commit=$old; else commit=$new; fi
      run "$commit" "r$round-$rate-$side" --rate "$rate" --duration 20 --warmup 3
    done
  done
  if [ "$order" = "old new" ]; then order="new old"; else order="old new"; fi
done
if [ "$ceiling" != none ]; then
  run "$old" ceiling-old --rate "ceiling:$ceiling" --duration 15 --warmup 3
  run "$new" ceiling-new --rate "ceiling:$ceiling" --duration 15 --warmup 3
fi
