#!/bin/bash
PY=/work/main/.venv/bin/python
run() { label=$1; pp=$2; shift 2
  echo "=== $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) :: stream-rec bench $*"
  (cd $pp && PYTHONPATH=$pp timeout 1500 $PY -m stream_rec bench "$@" --data-dir /tmp/i14-bench/d-$label --summary-json /tmp/i14-bench/$label.json 2>&1 | grep -v "^\s*$" | grep -v "^|" )
  echo "=== end $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
B=/tmp/i14-before; A=/work/i14
run q-before-kafka-max $B --broker kafka --rate max --duration 20 --warmup 3
run q-after-kafka-max  $A --broker kafka --rate max --duration 20 --warmup 3
run q-after-kafka-ceiling $A --broker kafka --rate ceiling:400 --duration 15 --warmup 3
run q-before-tansu-max $B --broker tansu --rate max --duration 20 --warmup 3
run q-after-tansu-max  $A --broker tansu --rate max --duration 20 --warmup 3
