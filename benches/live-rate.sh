#!/usr/bin/env bash
# Highest packet rate on lo at which `wsclose sniff` drops nothing: replays a
# capture onto lo with tcpreplay at increasing rates (packets per second) and
# reads the kernel's drop counters from the summary. Needs root, tcpreplay.
# Usage: benches/live-rate.sh [CAPTURE] [RATE...]
set -euo pipefail
cd "$(dirname "$0")/.."
cap=${1:-samples/large.pcap}
shift || true
rates=${*:-"20000 50000 100000 200000 400000 topspeed"}
[ -f "$cap" ] || samples/regen.sh large
cargo build --release --quiet
bin=target/release/wsclose
printf '%-10s %10s %10s %10s %10s %10s\n' rate 'sent pps' captured received dropped if_dropped
for rate in $rates; do
  out=$(mktemp)
  "$bin" sniff -i lo -f tcp ${SNIFF_ARGS:-} --json "$out" >/dev/null 2>/tmp/live-rate.err &
  pid=$!
  until grep -q 'capturing on' /tmp/live-rate.err 2>/dev/null; do sleep 0.1; done
  if [ "$rate" = topspeed ]; then opt=--topspeed; else opt=--pps=$rate; fi
  sent=$(tcpreplay -i lo $opt "$cap" 2>&1 | awk '/Rated:/ {print int($6)}')
  sleep 1
  kill -INT $pid; wait $pid || true
  python3 - "$out" "$rate" "$sent" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["sources"][0]
err = open("/tmp/live-rate.err").read()
import re
m = re.search(r"(\d+) packets captured, (\d+) received by filter, (\d+) dropped by kernel, (\d+) dropped by interface", err)
cap, rec, drop, ifdrop = m.groups()
print(f"{sys.argv[2]:<10} {sys.argv[3]:>10} {cap:>10} {rec:>10} {drop:>10} {ifdrop:>10}")
PY
  rm -f "$out"
done
