#!/usr/bin/env bash
# Fetch the Apache Kafka jars used by `--broker kafka` and the kafka tests (idempotent).
# Usage: scripts/fetch-kafka.sh [KAFKA_HOME]
#   KAFKA_HOME defaults to $STREAM_REC_KAFKA_HOME, else ~/.cache/stream-rec/kafka-<version>;
#   the jars land in KAFKA_HOME/libs. Needs Maven 3.8+ and a JDK 17+ (to run them).
# Prints the jar directory.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; fi
exec "$python" - "${1:-${STREAM_REC_KAFKA_HOME:-}}" <<'PY'
import sys
from pathlib import Path

from stream_rec.local.brokers import fetch_kafka

home = sys.argv[1]
print(fetch_kafka(Path(home) if home else None))
PY
