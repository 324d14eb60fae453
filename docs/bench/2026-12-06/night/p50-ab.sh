#!/usr/bin/env bash
# The recommend call's p50 in the evaluation replay (MovieLens validation stage, slm arm),
# before (f427693 in /tmp/oldmain) and after (this checkout), alternating, three rounds.
#   git worktree add /tmp/oldmain f427693 && bash docs/bench/2026-12-06/night/p50-ab.sh
here=$(cd "$(dirname "$0")/../../../.." && pwd)
py=$here/.venv/bin/python; data=$here/../shared/data
for round in 1 2 3; do
  for tree in /tmp/oldmain "$here"; do
    echo "== round $round $(basename "$tree") load $(cut -d' ' -f1 /proc/loadavg) $(date -u +%H:%M:%S)"
    (cd "$tree" && PYTHONPATH="$tree" "$py" -P bench/tune_ranker.py --dataset movielens \
        --data-dir "$data/movielens-latest-small" --protocol llamarec --model)
  done
done
