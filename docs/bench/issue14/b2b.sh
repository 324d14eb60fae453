#!/bin/bash
# back-to-back before (a8943f3 snapshot) / after (branch i14) runs, then after-only sweeps
PY=/work/main/.venv/bin/python
run() {  # label pythonpath args...
  label=$1; pp=$2; shift 2
  echo "=== $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) :: stream-rec bench $*"
  (cd $pp && PYTHONPATH=$pp timeout 1500 $PY -m stream_rec bench "$@" --data-dir /tmp/i14-bench/d-$label --summary-json /tmp/i14-bench/$label.json 2>&1 | grep -v "^\s*$" | grep -v "^|" )
  echo "=== end $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
B=/tmp/i14-before; A=/work/i14
run before-kafka-max $B --broker kafka --rate max --duration 20 --warmup 3
run after-kafka-max  $A --broker kafka --rate max --duration 20 --warmup 3
run before-kafka-1000 $B --broker kafka --rate 1000 --duration 20 --warmup 3
run after-kafka-1000  $A --broker kafka --rate 1000 --duration 20 --warmup 3
run before-tansu-max $B --broker tansu --rate max --duration 20 --warmup 3
run after-tansu-max  $A --broker tansu --rate max --duration 20 --warmup 3
run after-kafka-ceiling $A --broker kafka --rate ceiling:600 --duration 15 --warmup 3
run after-tansu-ceiling $A --broker tansu --rate ceiling:400 --duration 15 --warmup 3
run after-w2 $A --broker kafka,tansu --workers 2 --rate 500,max --duration 15 --warmup 3
