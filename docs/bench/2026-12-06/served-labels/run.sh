#!/usr/bin/env bash
# alternating before (42dc823, /work/main) / after (served-labels, /tmp/exp) live-path runs; the same bench script (/tmp/exp/bench/bench_eval.py handles both APIs)
D=/work/shared/data
for round in 1 2 3; do
 for ds in "online-retail $D/online-retail" "amazon-minionerec $D/amazon18-industrial-scientific-minionerec" "movielens $D/movielens-latest-small"; do
  set -- $ds
  for side in before after; do
   [ $side = before ] && root=/work/main || root=/tmp/exp
   echo "## round $round $1 $side $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
   (cd $root && PYTHONPATH=$root /work/main/.venv/bin/python /tmp/exp/bench/bench_eval.py --dataset $1 --data-dir $2 --max-events 30000 --live 5000 --recs 300 2>/dev/null)
  done
 done
done
