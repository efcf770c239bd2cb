#!/usr/bin/env bash
# Regenerate the wsclose sample captures: real WebSocket peers (python
# `websockets`, node `ws`, plus a hand-written python server for the peers that
# must misbehave) talking over loopback, captured with tcpdump / dumpcap.
#
#   sudo samples/regen.sh            # every capture (including large.pcap)
#   sudo samples/regen.sh NAME...    # only these (e.g. node-terminate large)
#   sudo samples/regen.sh facts      # only rewrite WIRE-FACTS.md
#
# Must run as root (packet capture). Rerunnable: each capture is written to a
# temporary directory first and moved into samples/ only when complete.
# Network: 127.0.0.1 and ::1 only, ports 18701-18792.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$SAMPLES/peers"
PY="${PYTHON:-python3}"
NODE="${NODE:-node}"

if [ "$(id -u)" != 0 ]; then
    echo "regen.sh: must run as root (tcpdump/dumpcap capture on lo)" >&2
    exit 1
fi
for tool in tcpdump dumpcap tshark capinfos "$PY" "$NODE" npm timeout; do
    command -v "$tool" >/dev/null || { echo "regen.sh: $tool not found" >&2; exit 1; }
done

# ---------------------------------------------------------------- dependencies
want_ws_py="$(sed -n 's/^websockets==//p' "$PEERS/requirements.txt")"
have_ws_py="$("$PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null || true)"
if [ "$have_ws_py" != "$want_ws_py" ]; then
    echo "== installing python websockets $want_ws_py"
    "$PY" -m pip install --quiet -r "$PEERS/requirements.txt"
fi
want_ws_node="$(sed -n 's/.*"ws": *"\([^"]*\)".*/\1/p' "$PEERS/package.json")"
have_ws_node="$(cd "$PEERS" && "$NODE" -p 'require("ws/package.json").version' 2>/dev/null || true)"
if [ "$have_ws_node" != "$want_ws_node" ]; then
    echo "== installing node ws $want_ws_node (npm ci)"
    (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error)
fi
PY_VER="$("$PY" -c 'import websockets; print(websockets.__version__)')"
NODE_VER="$(cd "$PEERS" && "$NODE" -p 'require("ws/package.json").version')"
echo "== python websockets $PY_VER, node ws $NODE_VER"

TMP="$SAMPLES/.regen-tmp"
rm -rf "$TMP"
mkdir -p "$TMP"
BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# ------------------------------------------------------------------- helpers
CAP_PID=""
CAP_LOG=""

# wait_for_line FILE TEXT SECONDS PID: wait until FILE contains TEXT.
wait_for_line() {
    local file="$1" text="$2" secs="$3" pid="$4" i
    for ((i = 0; i < secs * 20; i++)); do
        grep -q "$text" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { echo "process $pid died:" >&2; cat "$file" >&2; return 1; }
        sleep 0.05
    done
    echo "timed out waiting for '$text' in $file" >&2
    cat "$file" >&2
    return 1
}

# start_tcpdump OUTFILE FILTER [extra tcpdump args...]
start_tcpdump() {
    local out="$1" filter="$2"
    shift 2
    CAP_LOG="$TMP/capture.txt"
    : >"$CAP_LOG"
    # -Z root: do not drop privileges before opening the file.
    # --immediate-mode: deliver every packet at once, so none is left in the
    # kernel ring buffer when we stop. -U: flush the file after every packet.
    tcpdump -Z root -i lo -s 0 -U --immediate-mode -B 8192 "$@" -w "$out" "$filter" 2>"$CAP_LOG" &
    CAP_PID=$!
    BG_PIDS+=("$CAP_PID")
    wait_for_line "$CAP_LOG" "listening on" 10 "$CAP_PID"
    sleep 0.3
}

# start_dumpcap OUTFILE FILTER: pcapng capture with dumpcap.
start_dumpcap() {
    local out="$1" filter="$2"
    CAP_LOG="$TMP/capture.txt"
    : >"$CAP_LOG"
    dumpcap -q -i lo -s 0 -f "$filter" -w "$out" 2>"$CAP_LOG" &
    CAP_PID=$!
    BG_PIDS+=("$CAP_PID")
    wait_for_line "$CAP_LOG" "Capturing on" 10 "$CAP_PID"
    sleep 1
}

stop_capture() {
    sleep 1 # let the last ACKs reach the capture
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || { echo "capture process failed:" >&2; cat "$CAP_LOG" >&2; return 1; }
    sed 's/^/   capture: /' "$CAP_LOG"
    if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$CAP_LOG"; then
        echo "regen.sh: the kernel dropped packets, the capture is incomplete" >&2
        return 1
    fi
}

# start_server LOGNAME READY-TEXT CMD...: start a peer server in the background
# and wait until it listens (no probing connection: it would be captured).
SERVER_PIDS=()
start_server() {
    local name="$1" ready="$2"
    shift 2
    local log="$TMP/$name.log"
    : >"$log"
    timeout 400 "$@" 2>"$log" &
    local pid=$!
    SERVER_PIDS+=("$pid")
    BG_PIDS+=("$pid")
    wait_for_line "$log" "$ready" 15 "$pid"
}

# wait_servers: wait for every started server to exit on its own.
wait_servers() {
    local p rc=0
    for p in "${SERVER_PIDS[@]}"; do
        wait "$p" || rc=$?
    done
    SERVER_PIDS=()
    cat "$TMP"/*.log | sed 's/^/   peer: /' || true
    rm -f "$TMP"/*.log
    return $rc
}

client() { timeout 400 "$@" 2>&1 | sed 's/^/   peer: /'; return "${PIPESTATUS[0]}"; }
pyserver() { start_server "$1" "listening on" "$PY" "$PEERS/py_peer.py" "${@:2}"; }
nodeserver() { start_server "$1" "listening on" "$NODE" "$PEERS/node_peer.js" "${@:2}"; }
pyclient() { client "$PY" "$PEERS/py_peer.py" client "$@"; }
nodeclient() { client "$NODE" "$PEERS/node_peer.js" client "$@"; }

# finish NAME...: move completed captures from $TMP into samples/.
finish() {
    local f
    for f in "$@"; do
        chmod 644 "$TMP/$f"
        mv -f "$TMP/$f" "$SAMPLES/$f"
        printf '   -> %s (%s bytes, %s packets)\n' "$f" "$(stat -c %s "$SAMPLES/$f")" \
            "$(capinfos -c -M "$SAMPLES/$f" | sed -n 's/^Number of packets: *//p')"
    done
}

# ----------------------------------------------------------------- scenarios
# Each scenario: start the server(s), then the capture, then the client; wait
# for every peer to exit; stop the capture.

python-clean-client-close() {
    local port=18701
    pyserver srv server clean-client-close --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    pyclient clean-client-close --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

node-clean-server-close-reason() {
    local port=18702
    nodeserver srv server server-close-reason --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    nodeclient server-close-reason --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

python-4000-utf8-reason() {
    local port=18703
    pyserver srv server server-close-utf8 --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    pyclient server-close-utf8 --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

node-terminate() {
    local port=18704
    nodeserver srv server terminate --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    nodeclient terminate --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

unanswered-close() {
    local port=18705
    pyserver raw rawserver unanswered --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    pyclient unanswered --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

close-timeout() {
    local port=18706
    pyserver raw rawserver close-timeout --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    pyclient close-timeout --port $port # returns after ~7 s
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

rejected-upgrade() {
    local port=18707
    pyserver srv server rejected --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    pyclient rejected --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

many-connections() {
    local port=18780 # node ws 18780, python websockets 18781, raw 18782
    nodeserver node server many --port $port --conns 7
    pyserver py server many --port $((port + 1)) --conns 8
    pyserver raw rawserver many --port $((port + 2)) --conns 2
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp portrange $port-$((port + 2))"
    pyclient many --port $port
    nodeclient many --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

ipv6-clean() {
    local port=18709
    pyserver srv server clean-client-close --host ::1 --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port"
    pyclient clean-client-close --host ::1 --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

any-sll2() {
    local port=18710
    pyserver srv server clean-client-close --port $port
    # -i any with the Linux "cooked v2" link type (LINUX_SLL2); -i given
    # twice: the last one wins.
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port" -i any -y LINUX_SLL2
    pyclient clean-client-close --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

node-ping-pong() {
    local port=18711
    nodeserver srv server ping-pong --port $port
    start_dumpcap "$TMP/$FUNCNAME.pcapng" "tcp port $port"
    nodeclient ping-pong --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcapng"
}

nanosecond() {
    local port=18712
    nodeserver srv server clean --port $port
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp port $port" --time-stamp-precision=nano
    nodeclient clean --port $port
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

rotated() {
    local port=18713 f i=0 files=()
    rm -f "$SAMPLES"/rotated-*.pcap
    mkdir -p "$TMP/rot"
    pyserver srv server clean-client-close --port $port
    # -G 1: tcpdump starts a new file at the first packet of each new second
    # (of time(2)). The client sends one message per second, each just after a
    # second boundary, and closes just after the next one, so the connection
    # spans several files and its whole closing is in the last one.
    start_tcpdump "$TMP/rot/rot-%s.pcap" "tcp port $port" -G 1
    pyclient rotated --port $port
    wait_servers
    stop_capture
    for f in $(ls "$TMP/rot" | sort -t- -k2 -n); do
        # The first file is empty when the first packet came in a later second
        # than tcpdump's start: drop files without packets.
        if [ "$(capinfos -c -M "$TMP/rot/$f" | sed -n 's/^Number of packets: *//p')" = 0 ]; then
            continue
        fi
        i=$((i + 1))
        mv "$TMP/rot/$f" "$TMP/rotated-$i.pcap"
        files+=("rotated-$i.pcap")
    done
    finish "${files[@]}"
}

large() {
    local port=18790 # node ws 18790, raw 18792
    nodeserver node server large --port $port --conns 200 --max-seconds 300
    pyserver raw rawserver many --port $((port + 2)) --conns 6 --max-seconds 300
    start_tcpdump "$TMP/$FUNCNAME.pcap" "tcp portrange $port-$((port + 2))" -B 65536
    client "$NODE" "$PEERS/node_peer.js" client large --port $port --max-seconds 280
    wait_servers
    stop_capture
    finish "$FUNCNAME.pcap"
}

ALL=(python-clean-client-close node-clean-server-close-reason python-4000-utf8-reason
    node-terminate unanswered-close close-timeout rejected-upgrade many-connections
    ipv6-clean any-sll2 node-ping-pong nanosecond rotated large)

if [ $# -gt 0 ]; then SELECTED=("$@"); else SELECTED=("${ALL[@]}"); fi
if [ "${SELECTED[*]}" = facts ]; then
    SELECTED=() # only rewrite WIRE-FACTS.md from the captures in samples/
fi
for i in "${!SELECTED[@]}"; do
    s="${SELECTED[$i]%.pcap}"
    s="${s%.pcapng}"
    SELECTED[$i]="$s"
    case " ${ALL[*]} " in *" $s "*) ;; *) echo "unknown scenario $s (known: ${ALL[*]}, or facts)" >&2; exit 2 ;; esac
done
for s in "${SELECTED[@]}"; do
    echo "== $s"
    "$s"
    BG_PIDS=() # everything started for this scenario has exited
done

# Per-connection wire facts of every sample (tshark's view, independent of
# wsclose), so that MANIFEST.md can be checked against what was captured.
echo "== WIRE-FACTS.md"
{
    echo "# Wire facts of the sample captures"
    echo
    echo "Generated by \`samples/regen.sh\` with \`samples/peers/wire_facts.py\` (tshark $(tshark --version 2>/dev/null | sed -n '1s/.*(Wireshark) \([^ ]*\).*/\1/p'),"
    echo "python websockets $PY_VER, node ws $NODE_VER). Times in seconds; \"first FIN/RST\" is"
    echo "relative to the first close frame, or to the last frame when there was none."
    echo "Outcome and findings: the wsclose contract's rules applied to these facts (T = 5 s)."
    echo
    facts=()
    for f in python-clean-client-close.pcap node-clean-server-close-reason.pcap \
        python-4000-utf8-reason.pcap node-terminate.pcap unanswered-close.pcap close-timeout.pcap \
        rejected-upgrade.pcap many-connections.pcap ipv6-clean.pcap any-sll2.pcap \
        node-ping-pong.pcapng nanosecond.pcap; do
        if [ -f "$SAMPLES/$f" ]; then facts+=("$f"); fi
    done
    # the rotated files are one capture: joined with '+'
    rotated_set="$(cd "$SAMPLES" && ls rotated-*.pcap 2>/dev/null | sort -t- -k2 -n | paste -sd+)"
    if [ -n "$rotated_set" ]; then facts+=("$rotated_set"); fi
    (cd "$SAMPLES" && "$PY" "$PEERS/wire_facts.py" "${facts[@]}")
    if [ -f "$SAMPLES/large.pcap" ]; then
        echo
        echo "large.pcap ($(stat -c %s "$SAMPLES/large.pcap") bytes, $(capinfos -c -M "$SAMPLES/large.pcap" | sed -n 's/^Number of packets: *//p') packets):"
        echo
        (cd "$SAMPLES" && "$PY" "$PEERS/wire_facts.py" --summary-only large.pcap)
    fi
} >"$TMP/WIRE-FACTS.md"
mv -f "$TMP/WIRE-FACTS.md" "$SAMPLES/WIRE-FACTS.md"
chmod 644 "$SAMPLES/WIRE-FACTS.md"
echo "== done"
