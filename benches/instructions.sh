#!/usr/bin/env bash
# Instructions, not seconds (issue 11): callgrind's counts for the walk
# (examples/barewalk), its floor (`barewalk --floor`) and wsclose on one
# thread, on captures of benches/e2e.sh. Counts repeat from run to run
# whatever else the machine does, so they settle what timed runs on a
# shared machine cannot: how far wsclose is above the walk and the floor,
# and whether its cost per byte is the same at 100 MB and at 1 GB (they
# do not show cache misses: benches/e2e.sh times those).
#
# Usage: benches/instructions.sh [NAME...]
#   NAME: a capture of benches/e2e.sh (default: small-600-100M small-600-1G;
#   run benches/e2e.sh first, which makes them). About 10 minutes.
# Output: a markdown table; the last line compares the per-byte cost of
# the first two captures.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(small-600-100M small-600-1G)
dir=target/bench-captures bin=target/release
for name in "${names[@]}"; do
  [ -s "$dir/$name.pcap" ] || { echo "no $dir/$name.pcap: run benches/e2e.sh first" >&2; exit 2; }
done
echo "building (release) ..." >&2
cargo build --release --examples --bins --locked >&2

# Instructions of one run of CMD under callgrind.
count() {
  local log
  log=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" >/dev/null 2>"$log" ||
    { cat "$log" >&2; rm -f "$log"; exit 1; }
  grep -o 'Collected : [0-9]*' "$log" | grep -o '[0-9]*$'
  rm -f "$log"
}

echo "| capture | bytes | packets | walk | floor | wsclose --threads 1 | floor / walk | wsclose / walk | wsclose per packet | wsclose per byte |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
per_byte=()
for name in "${names[@]}"; do
  cap="$dir/$name.pcap"
  echo "  $name ..." >&2
  bytes=$(stat -c %s "$cap")
  packets=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$dir/$name.truth.json")
  walk=$(count "$bin/examples/barewalk" "$cap")
  floor=$(count "$bin/examples/barewalk" --floor "$cap")
  # Under valgrind wsclose does not start itself again with its allocator
  # cache (src/allocator.rs): set it here, as a run outside valgrind has it.
  ws=$(GLIBC_TUNABLES=glibc.malloc.tcache_count=1024 count "$bin/wsclose" analyze "$cap" --json /dev/null --threads 1)
  per_byte+=("$(awk -v w="$ws" -v b="$bytes" 'BEGIN {printf "%.4f", w / b}')")
  awk -v n="$name" -v b="$bytes" -v p="$packets" -v w="$walk" -v f="$floor" -v s="$ws" 'BEGIN {
    printf "| %s | %d | %d | %.1f M | %.1f M | %.1f M | %.2f | %.2f | %.0f | %.2f |\n",
      n, b, p, w / 1e6, f / 1e6, s / 1e6, f / w, s / w, s / p, s / b
  }'
done
if [ ${#per_byte[@]} -ge 2 ]; then
  awk -v a="${per_byte[0]}" -v b="${per_byte[1]}" -v na="${names[0]}" -v nb="${names[1]}" 'BEGIN {
    printf "\nwsclose per byte: %.2f instructions on %s, %.2f on %s (%+.1f %%)\n", a, na, b, nb, (b / a - 1) * 100
  }'
fi
