#!/usr/bin/env bash
# A/B of two checkouts on the validation stages of all three datasets, slm arm (and the
# no-model `fast` arm with FAST=1):  bash bench/ab_trees.sh OLD_TREE NEW_TREE
# Make the old checkout with `git worktree add /tmp/old <commit>`. Each line printed is
# "tree dataset arm {figures}". Accuracy is deterministic; p50_ms and learn_us are not.
set -eu
old=$(realpath "$1"); new=$(realpath "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
data=${DATA:-$here/../shared/data}
run() { # tree dataset dir protocol [--model]
  (cd "$1" && PYTHONPATH="$1" "$py" -P bench/tune_ranker.py --dataset "$2" --data-dir "$data/$3" \
      --protocol "$4" ${5:-} | sed "s|^|$(basename "$1") $2 ${5:-fast} |")
}
for ds in "online-retail online-retail time-split" \
          "amazon-minionerec amazon18-industrial-scientific-minionerec minionerec" \
          "movielens movielens-latest-small llamarec"; do
  set -- $ds
  for tree in "$old" "$new"; do
    run "$tree" "$1" "$2" "$3" --model
    if [ "${FAST:-0}" = 1 ]; then run "$tree" "$1" "$2" "$3"; fi
  done
done
