#!/usr/bin/env bash
# A/B of performance levers: each commit's code measured with today's bench harness.
#
#   bench/ab.sh NAME=COMMIT [NAME=COMMIT ...]
#
# For each pair: the commit's tree goes to /tmp/cafgw-ab/NAME (git archive), with
# this checkout's bench/ and .venv, and is measured with the same arguments
# (override with AB_ARGS); PYTHONPATH makes the gateway processes run that tree.
# Results: /tmp/cafgw-ab/results/NAME-<stamp>.json, NAME.txt and a log with the
# load average before and after each run. Copy the JSON you cite to bench/results/.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${AB_WORK:-/tmp/cafgw-ab}
OUT=$WORK/results
ARGS=${AB_ARGS:---count 3000 --rates 50,200,500 --rate-seconds 5 --path-records 200 --adapter-records 0}
mkdir -p "$OUT"
for pair in "$@"; do
  name=${pair%%=*}; sha=${pair#*=}
  dir=$WORK/$name
  rm -rf "$dir"; mkdir -p "$dir"
  git -C "$HERE" archive "$sha" | tar -x -C "$dir"
  rm -rf "$dir/bench" && cp -r "$HERE/bench" "$dir/bench" && rm -f "$dir"/bench/results/*.json
  ln -s "$HERE/.venv" "$dir/.venv"
  echo "== $name $sha $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log"
  # shellcheck disable=SC2086
  (cd "$dir" && PYTHONPATH=$dir .venv/bin/python -m bench.run $ARGS > "$OUT/$name.txt" 2>&1)
  echo "   rc=$? $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log"
  for f in "$dir"/bench/results/*.json; do
    [ -e "$f" ] && cp "$f" "$OUT/$name-$(basename "$f")"
  done
  rm -rf "$dir"
done
