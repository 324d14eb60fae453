#!/usr/bin/env bash
# 2026-12-07 04:51-05:06 UTC: the pull API's latest-recs table written where a rec is sent
# (4c5c2ef, "new") against the read-back of the recs topic (7c45bee, "old"), both with the
# table on (the default), on Apache Kafka, back to back: 200/s and 260/s for 20 s, two
# alternating rounds each, then a ceiling search each way. Run from the repository root;
# writes JSON summaries into this folder. (The recorded run took "new" from the working
# tree at 4c5c2ef, docs edits only, rather than a checkout.)
set -eu
bash bench/ab_commits.sh 7c45bee 4c5c2ef docs/bench/2026-12-07/latest-recs-in-stream kafka "200 260" 500
