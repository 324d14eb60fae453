#!/bin/bash
# ceiling searches, alternating before (ff01ba0) / after (0246fb8); each run from its own checkout
for spec in "1 before" "1 after" "2 after" "2 before"; do
  set -- $spec; r=$1; t=$2
  if [ $t = before ]; then w=/tmp/oldmain; else w=/tmp/newmain; fi
  echo "== round $r $t $(date -u +%H:%M:%S) $(cut -d' ' -f1 /proc/loadavg)"
  (cd $w && PYTHONPATH=$w /work/main/.venv/bin/python -m stream_rec bench --broker kafka,tansu --rate ceiling:300 --duration 15 --warmup 3 --out /tmp/bench1206/ceil-r$r-$t > /tmp/bench1206/ceil-r$r-$t.log 2>&1)
  echo "rc $? $(date -u +%H:%M:%S)"
done
