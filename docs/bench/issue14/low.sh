#!/bin/bash
PY=/work/main/.venv/bin/python
run() { label=$1; pp=$2; shift 2
  echo "=== $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) :: stream-rec bench $*"
  (cd $pp && PYTHONPATH=$pp timeout 1500 $PY -m stream_rec bench "$@" --data-dir /tmp/i14-bench/d-$label --summary-json /tmp/i14-bench/$label.json 2>&1 | grep -v "^\s*$" | grep -v "^|" )
  echo "=== end $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
B=/tmp/i14-before; A=/work/i14
run l-before-kafka-150 $B --broker kafka --rate 150 --duration 20 --warmup 3
run l-after-kafka-150  $A --broker kafka --rate 150 --duration 20 --warmup 3
run l-before-kafka-300 $B --broker kafka --rate 300 --duration 20 --warmup 3
run l-after-kafka-300  $A --broker kafka --rate 300 --duration 20 --warmup 3
