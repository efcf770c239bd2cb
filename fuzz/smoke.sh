#!/usr/bin/env bash
# Runs every fuzz target for a short while (default 30 s each) on a copy of
# its committed corpus. Exits 0 with a message when the nightly toolchain is
# missing; installs cargo-fuzz (cargo install cargo-fuzz --locked, about 30 s
# to a few minutes) when nightly exists but cargo-fuzz does not.
# Exits 1 if any target crashes, times out or runs out of memory; the input
# is left in fuzz/artifacts/<target>/.
#
# Environment:
#   SMOKE_SECS=30        seconds per target
#   SMOKE_TARGETS="..."  targets to run (default: all)
#   SMOKE_NO_INSTALL=1   skip instead of installing cargo-fuzz
set -u

cd "$(dirname "$0")"
secs="${SMOKE_SECS:-30}"
targets="${SMOKE_TARGETS:-frame_header upgrade close_payload reassembly messages tls_records keylog pipeline sharded}"

max_len() {
    case "$1" in
        frame_header) echo 8192 ;;
        upgrade) echo 20000 ;;
        close_payload) echo 256 ;;
        reassembly) echo 4096 ;;
        messages) echo 4096 ;;
        tls_records) echo 20000 ;;
        keylog) echo 4096 ;;
        *) echo 65536 ;;
    esac
}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz smoke: skipped (no nightly toolchain: rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    if [ "${SMOKE_NO_INSTALL:-0}" = 1 ]; then
        echo "fuzz smoke: skipped (cargo-fuzz not installed)"
        exit 0
    fi
    echo "fuzz smoke: installing cargo-fuzz"
    start=$SECONDS
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz smoke: skipped (cargo-fuzz could not be installed)"
        exit 0
    fi
    echo "fuzz smoke: cargo-fuzz installed in $((SECONDS - start)) s"
fi

start=$SECONDS
if ! cargo +nightly fuzz build; then
    echo "fuzz smoke: FAILED to build the fuzz targets"
    exit 1
fi
echo "fuzz smoke: built in $((SECONDS - start)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=""
for t in $targets; do
    mkdir -p "$work/$t" "corpus/$t"
    log="$work/$t.log"
    t0=$SECONDS
    # New inputs go to the scratch dir; the committed corpus is only read.
    cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -max_len="$(max_len "$t")" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')
    if [ $rc -ne 0 ]; then
        echo "fuzz smoke: $t FAILED (exit $rc) after $((SECONDS - t0)) s:"
        grep -E -A1 'panicked at' "$log" | head -6
        grep -E 'ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -6
        failed="$failed $t"
    else
        echo "fuzz smoke: $t ok, ${execs:-?} runs, ${cov:-cov: ?}, $((SECONDS - t0)) s"
    fi
done
echo "fuzz smoke: total $((SECONDS - start)) s"
if [ -n "$failed" ]; then
    echo "fuzz smoke: crashed:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
