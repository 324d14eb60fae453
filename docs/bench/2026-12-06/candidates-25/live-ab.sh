#!/bin/bash
# before = ff01ba0 (/tmp/oldmain), after = 0246fb8 (/tmp/newmain); each side runs its own bench script
cd /work/main
uptime
for round in 1 2 3 4 5; do  # run as two invocations: rounds 1-2, then 3-5
for d in online-retail:online-retail movielens:movielens-latest-small amazon-minionerec:amazon18-industrial-scientific-minionerec; do
  n=${d%%:*}; dir=${d#*:}
  for t in before after; do
    if [ $t = before ]; then w=/tmp/oldmain; else w=/tmp/newmain; fi
    echo "== round $round $t $n $(date -u +%H:%M:%S)"
    PYTHONPATH=$w .venv/bin/python $w/bench/bench_eval.py --dataset $n --data-dir ../shared/data/$dir --max-events 30000 --live 5000 --recs 300 2>/dev/null
  done
done
done
uptime
