#!/usr/bin/env bash
# bought_days' cost in process, back to back: before (3cf2599 in /tmp/oldmain) and after
# (this checkout), alternating, three rounds, Online Retail and Industrial.
#   git worktree add /tmp/oldmain 3cf2599 && bash docs/bench/2026-12-06/bought-days/live-ab.sh
here=$(cd "$(dirname "$0")/../../../.." && pwd)
py=$here/.venv/bin/python; data=$here/../shared/data
for round in 1 2 3; do
  for ds in "online-retail online-retail" "amazon-minionerec amazon18-industrial-scientific-minionerec"; do
    set -- $ds
    for tree in /tmp/oldmain "$here"; do
      echo "== round $round $1 $(basename "$tree") load $(cut -d' ' -f1 /proc/loadavg)"
      (cd "$tree" && PYTHONPATH="$tree" "$py" -P bench/bench_eval.py --dataset "$1" \
          --data-dir "$data/$2" --max-events 30000 --live 5000 --recs 300 2>/dev/null \
          | grep -E "recommend|live")
    done
  done
done
