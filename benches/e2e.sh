#!/usr/bin/env bash
# End-to-end benchmark (issue 11): generated captures with known truth,
# timed side by side in one run. For each capture: the bare walk
# (examples/barewalk: map + pcap-parser + etherparse, nothing else), the
# floor (`barewalk --floor`: the walk, plus each segment's connection found
# in a hash table and every payload byte read once by a UTF-8 check: the
# least any analysis of the payloads does),
# `wsclose analyze FILE --json /dev/null` on one thread (`--threads 1`)
# and with `--threads 2` (when `wsclose analyze --help` offers it: files
# get a thread per core by default), and tshark on the ~100 MB capture.
# Runs are paired (walk, wsclose, ... in turn) and the medians reported:
# CPU time (user+sys) and wall time against the walk's, packets/s, peak
# RSS and peak anonymous RSS (RssAnon, sampled every 10 ms from
# /proc/PID/status: the mapped capture's pages count in RSS, not in
# RssAnon). Every wsclose analysis is checked against its truth file
# (examples/checktruth); a wrong analysis makes the run fail (exit 1).
#
# Usage: benches/e2e.sh [--quick]   (--quick: small captures, one run each)
# Captures are cached in target/bench-captures/ (about 5 GB) and remade
# when examples/gencap is newer than they are. Output: a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

echo "building (release) ..." >&2
cargo build --release --examples --bins --locked >&2
bin=target/release
dir=target/bench-captures
mkdir -p "$dir"

# name | gencap arguments | runs
if [ "$quick" = 1 ]; then
  captures=(
    "small-600-10M|--size 10M --concurrent 600 --packet 190|1"
    "short-10k|--short --connections 10000 --concurrent 600 --packet 1400|1"
  )
  tshark_on="small-600-10M"
else
  captures=(
    "small-600-100M|--size 100M --concurrent 600 --packet 190|5"
    "small-600-1G|--size 1G --concurrent 600 --packet 190|3"
    "small-10k-1G|--size 1G --concurrent 10000 --packet 190|3"
    "large-600-1G|--size 1G --concurrent 600 --packet 1500|3"
    "short-1M|--short --connections 1000000 --concurrent 600 --packet 1400|3"
  )
  tshark_on="small-600-100M"
fi

threads=0
if "$bin/wsclose" analyze --help 2>/dev/null | grep -q -- '--threads'; then
  threads=1
fi

# measure CMD...: runs CMD with stdout to /dev/null and prints
# "wall_s cpu_s maxrss_kb rssanon_kb exit".
measure=$(mktemp --suffix=.py)
trap 'rm -f "$measure"' EXIT
cat >"$measure" <<'EOF'
import os, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
anon = 0
status = f"/proc/{p.pid}/status"
while True:
    pid, st, ru = os.wait4(p.pid, os.WNOHANG)
    if pid:
        break
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = max(anon, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.01)
wall = time.monotonic() - t0
code = os.waitstatus_to_exitcode(st)
print(f"{wall:.4f} {ru.ru_utime + ru.ru_stime:.4f} {ru.ru_maxrss} {anon} {code}")
EOF

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

failed=0
check=()
declare -A packets_of bytes_of
gen_report=()
for entry in "${captures[@]}"; do
  IFS='|' read -r name args _ <<<"$entry"
  cap="$dir/$name.pcap" truth="$dir/$name.truth.json"
  if [ ! -s "$cap" ] || [ ! -s "$truth" ] || [ "$bin/examples/gencap" -nt "$cap" ]; then
    echo "generating $name ..." >&2
    # shellcheck disable=SC2086
    line=$("$bin/examples/gencap" --out "$cap" --truth "$truth" $args --seed 1 2>&1 >/dev/null | tail -n 1)
    gen_report+=("| $name | ${line#gencap: } |")
  fi
  packets_of[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$truth")
  bytes_of[$name]=$(stat -c %s "$cap")
done

# One run of a command on a capture, its numbers appended to $results/<name>.<tool>.
results=$(mktemp -d)
trap 'rm -rf "$measure" "$results"' EXIT
timed() {
  local name=$1 tool=$2
  shift 2
  local out
  out=$(python3 "$measure" "$@")
  if [ "${out##* }" != 0 ]; then
    echo "$tool on $name exited ${out##* }" >&2
    failed=1
  fi
  echo "$out" >>"$results/$name.$tool"
}

for entry in "${captures[@]}"; do
  IFS='|' read -r name _ runs <<<"$entry"
  cap="$dir/$name.pcap" truth="$dir/$name.truth.json" summary="$dir/$name.summary.json"
  echo "checking $name against its truth ..." >&2
  # The check runs also bring the capture into the page cache.
  variants=("")
  [ "$threads" = 1 ] && variants=("--threads 1" "--threads 2")
  verdict=ok
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    if "$bin/wsclose" analyze "$cap" --json "$summary" $v >/dev/null &&
      "$bin/examples/checktruth" "$truth" "$summary" >"$dir/$name.check.txt"; then
      :
    else
      echo "WRONG ANALYSIS of $name ${v:+($v)}: see $dir/$name.check.txt" >&2
      grep DIFF "$dir/$name.check.txt" >&2 || true
      verdict=WRONG
      failed=1
    fi
    rm -f "$summary"
  done
  check[${#check[@]}]="$name $verdict"
  for ((i = 1; i <= runs; i++)); do
    echo "  $name run $i/$runs" >&2
    # This machine's page cache holds about 6 GB, less than the captures
    # (and the spool files the runs write): read the capture again before
    # each round, so that no timed run waits for the disk.
    cat "$cap" >/dev/null
    timed "$name" walk "$bin/examples/barewalk" "$cap"
    timed "$name" floor "$bin/examples/barewalk" --floor "$cap"
    if [ "$threads" = 1 ]; then
      timed "$name" wsclose "$bin/wsclose" analyze "$cap" --json /dev/null --threads 1
    else
      timed "$name" wsclose "$bin/wsclose" analyze "$cap" --json /dev/null
    fi
    if [ "$threads" = 1 ]; then
      timed "$name" wsclose-t2 "$bin/wsclose" analyze "$cap" --json /dev/null --threads 2
    fi
    if [ "$name" = "$tshark_on" ] && command -v tshark >/dev/null; then
      timed "$name" tshark tshark -r "$cap" -Y websocket
    fi
  done
done

col() { awk -v c="$1" '{print $c}' "$2" | median; }

echo
echo "## wsclose end to end ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores)"
echo
if [ ${#gen_report[@]} -gt 0 ]; then
  echo "| capture generated | gencap |"
  echo "|---|---|"
  printf '%s\n' "${gen_report[@]}"
  echo
fi
echo "| capture | size | packets | command | wall | CPU | wall / walk | CPU / walk | packets/s (wall) | peak RSS | peak RssAnon | truth |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
for entry in "${captures[@]}"; do
  IFS='|' read -r name _ _ <<<"$entry"
  walk_wall=$(col 1 "$results/$name.walk") walk_cpu=$(col 2 "$results/$name.walk")
  verdict=$(printf '%s\n' "${check[@]}" | awk -v n="$name" '$1 == n {print $2}')
  for tool in walk floor wsclose wsclose-t2 tshark; do
    f="$results/$name.$tool"
    [ -s "$f" ] || continue
    wall=$(col 1 "$f") cpu=$(col 2 "$f") rss=$(col 3 "$f") anon=$(col 4 "$f")
    case $tool in
      walk) what="barewalk" ;;
      floor) what="barewalk --floor" ;;
      wsclose) what="wsclose --json /dev/null$([ "$threads" = 1 ] && echo " --threads 1")" ;;
      wsclose-t2) what="wsclose --threads 2" ;;
      tshark) what="tshark -Y websocket" ;;
    esac
    awk -v n="$name" -v size="${bytes_of[$name]}" -v p="${packets_of[$name]}" -v what="$what" \
      -v wall="$wall" -v cpu="$cpu" -v ww="$walk_wall" -v wc="$walk_cpu" -v rss="$rss" -v anon="$anon" \
      -v truth="$(case $tool in wsclose*) echo "$verdict" ;; esac)" 'BEGIN {
        printf "| %s | %.0f MB | %d | %s | %.3f s | %.3f s | %.1f | %.1f | %.2f M | %.0f MB | %.0f MB | %s |\n",
          n, size / 1e6, p, what, wall, cpu, wall / ww, cpu / wc, p / wall / 1e6, rss / 1024, anon / 1024, truth
      }'
  done
done

# Linearity: wsclose's CPU per byte on 100 MB and 1 GB at the same concurrency.
a="$results/small-600-100M.wsclose" b="$results/small-600-1G.wsclose"
if [ -s "$a" ] && [ -s "$b" ]; then
  awk -v ca="$(col 2 "$a")" -v cb="$(col 2 "$b")" -v sa="${bytes_of[small-600-100M]}" -v sb="${bytes_of[small-600-1G]}" 'BEGIN {
    na = ca / sa * 1e9; nb = cb / sb * 1e9
    printf "\nPer byte (wsclose CPU, 600 concurrent, small packets): %.2f ns/B at %.0f MB, %.2f ns/B at %.0f MB (ratio %.2f)\n",
      na, sa / 1e6, nb, sb / 1e6, nb / na
  }'
fi
echo
if [ "$failed" = 0 ]; then
  echo "Every analysis matched its truth file."
else
  echo "FAILED: a wrong analysis or a command that failed (see above)."
fi
exit "$failed"
