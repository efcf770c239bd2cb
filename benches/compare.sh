#!/usr/bin/env bash
# Side-by-side wall time, in one run, on the same capture:
#   a bare read of the file (cat > /dev/null), wsclose analyze (tables and
#   JSON), and tshark's WebSocket dissection (tshark -r FILE -Y websocket).
# Usage: benches/compare.sh [CAPTURE]   (default: samples/large.pcap, made by
# `samples/regen.sh large` when missing). Needs hyperfine and tshark
# (apt-get install -y hyperfine tshark).
set -euo pipefail
cd "$(dirname "$0")/.."
cap=${1:-samples/large.pcap}
if [ ! -f "$cap" ] && [ "$cap" = samples/large.pcap ]; then
  samples/regen.sh large
fi
cargo build --release --quiet
bin=target/release/wsclose
ls -l "$cap"
hyperfine --warmup 2 --min-runs 10 --export-markdown /tmp/wsclose-compare.md \
  -n 'cat (bare read)' "cat $cap > /dev/null" \
  -n 'wsclose analyze --json' "$bin analyze $cap --json /dev/null > /dev/null" \
  -n 'wsclose analyze (tables)' "$bin analyze $cap > /dev/null" \
  -n 'tshark -Y websocket' "tshark -r $cap -Y websocket > /dev/null"
cat /tmp/wsclose-compare.md
