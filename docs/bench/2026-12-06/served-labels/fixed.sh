#!/bin/bash
# fixed 300/s on Kafka, alternating before (42dc823) / after (0a6e3e9), three rounds, each from its own checkout
for round in 1 2 3; do
  for t in before after; do
    if [ $t = before ]; then w=/tmp/oldmain; else w=/tmp/newmain; fi
    echo "== round $round $t $(date -u +%H:%M:%S) $(cut -d' ' -f1 /proc/loadavg)"
    (cd $w && PYTHONPATH=$w /work/main/.venv/bin/python -m stream_rec bench --broker kafka --rate 300 --duration 15 --warmup 3 --summary-json /tmp/bench1206b/fixed-r$round-$t.json > /tmp/bench1206b/fixed-r$round-$t.log 2>&1)
    echo "rc $?"
  done
done
