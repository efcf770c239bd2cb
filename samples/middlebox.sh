#!/usr/bin/env bash
# Make samples/nginx-idle-cut.pcap: WebSocket clients behind a real nginx whose
# proxy_read_timeout (2 s) cuts the idle ones. See MANIFEST.md.
#
#   sudo samples/middlebox.sh
#
# - backend: python `websockets` echo server on 127.0.0.1:18801
#   (samples/peers/proxy_clients.py server; pinned in peers/requirements.txt);
# - nginx on 127.0.0.1:18800 (its own config, pid, logs and temp paths in a
#   temporary directory; nothing under /etc or /var is touched), proxying with
#   `proxy_read_timeout 2s`, HTTP/1.1 and the Upgrade/Connection headers;
# - clients (proxy_clients.py clients): 4 idle ones, started 0.7 s apart, that
#   upgrade and then send nothing (keep-alive pings off), and 2 that send a
#   text message every 0.5 s for 5 s and then close with 1000;
# - tcpdump on lo, ports 18800 and 18801: both legs of every connection
#   (client <-> nginx, nginx <-> backend).
#
# Then checks with tshark that every idle leg ended with a FIN from nginx
# about 2 s after its last packet, and every talking leg with close frames.
# Must run as root (capture on lo). Rerunnable: the capture is moved into
# samples/ only when complete and checked.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$SAMPLES/peers"
PY="${PYTHON:-python3}"
OUT=nginx-idle-cut.pcap
NGINX_PORT=18800
BACKEND_PORT=18801
IDLE=4
TALK=2
TIMEOUT_S=2

if [ "$(id -u)" != 0 ]; then
    echo "middlebox.sh: must run as root (tcpdump capture on lo)" >&2
    exit 1
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
for tool in tcpdump tshark capinfos ss "$PY" "$NGINX" timeout; do
    command -v "$tool" >/dev/null || { echo "middlebox.sh: $tool not found" >&2; exit 1; }
done

want_ws_py="$(sed -n 's/^websockets==//p' "$PEERS/requirements.txt")"
have_ws_py="$("$PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null || true)"
if [ "$have_ws_py" != "$want_ws_py" ]; then
    echo "== installing python websockets $want_ws_py"
    "$PY" -m pip install --quiet -r "$PEERS/requirements.txt"
fi
echo "== python websockets $("$PY" -c 'import websockets; print(websockets.__version__)'), $("$NGINX" -v 2>&1)"

TMP="$(mktemp -d /tmp/wsclose-middlebox.XXXXXX)"
BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

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

# ------------------------------------------------------------------ backend
timeout 120 "$PY" "$PEERS/proxy_clients.py" server --port $BACKEND_PORT \
    --conns $((IDLE + TALK)) --max-seconds 60 2>"$TMP/backend.log" &
BACKEND_PID=$!
BG_PIDS+=("$BACKEND_PID")
wait_for_line "$TMP/backend.log" "listening on" 15 "$BACKEND_PID"

# -------------------------------------------------------------------- nginx
# Foreground, one process (master_process off), every path in $TMP; -e so
# that nginx does not open its compiled-in /var/log/nginx/error.log.
cat >"$TMP/nginx.conf" <<EOF
daemon off;
master_process off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $TMP/body;
    proxy_temp_path $TMP/proxy;
    fastcgi_temp_path $TMP/fastcgi;
    uwsgi_temp_path $TMP/uwsgi;
    scgi_temp_path $TMP/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://127.0.0.1:$BACKEND_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host \$host;
            # Once upgraded, the only timer of an idle tunnel.
            proxy_read_timeout ${TIMEOUT_S}s;
        }
    }
}
EOF
"$NGINX" -p "$TMP" -e "$TMP/nginx-stderr.log" -c "$TMP/nginx.conf" >"$TMP/nginx.out" 2>&1 &
NGINX_PID=$!
BG_PIDS+=("$NGINX_PID")
# Ready when its socket listens (asked of the kernel: no probing connection).
for ((i = 0; i < 200; i++)); do
    [ -n "$(ss -Hltn "sport = :$NGINX_PORT")" ] && break
    kill -0 "$NGINX_PID" 2>/dev/null || { echo "nginx died:" >&2; cat "$TMP"/nginx*.log "$TMP/nginx.out" >&2; exit 1; }
    sleep 0.05
done
[ -n "$(ss -Hltn "sport = :$NGINX_PORT")" ] || { echo "nginx does not listen on $NGINX_PORT" >&2; exit 1; }

# ------------------------------------------------------------------ capture
# Immediate mode (every packet delivered at once, none left in the ring when
# we stop) with a small snap length: in immediate mode libpcap's ring slots
# are snaplen-sized, and with -s 0 on lo (MTU 65536) a burst of connections
# overflows it. Every packet here is far below 2048 bytes.
tcpdump -Z root -i lo -s 2048 -B 16384 -U --immediate-mode -w "$TMP/$OUT" \
    "tcp port $NGINX_PORT or tcp port $BACKEND_PORT" 2>"$TMP/capture.txt" &
CAP_PID=$!
BG_PIDS+=("$CAP_PID")
wait_for_line "$TMP/capture.txt" "listening on" 10 "$CAP_PID"
sleep 0.3

# ------------------------------------------------------------------ clients
echo "== clients: $IDLE idle, $TALK talking, through nginx :$NGINX_PORT"
timeout 60 "$PY" "$PEERS/proxy_clients.py" clients --port $NGINX_PORT \
    --idle $IDLE --talk $TALK --stagger 0.7 --interval 0.5 --talk-seconds 5 \
    --cut-within 10 --max-seconds 30 2>&1 | sed 's/^/   client: /'
wait "$BACKEND_PID"
sed 's/^/   backend: /' "$TMP/backend.log"

sleep 1 # let the last ACKs reach the capture
kill -INT "$CAP_PID"
wait "$CAP_PID" || { echo "tcpdump failed:" >&2; cat "$TMP/capture.txt" >&2; exit 1; }
sed 's/^/   capture: /' "$TMP/capture.txt"
if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$TMP/capture.txt"; then
    echo "middlebox.sh: the kernel dropped packets, the capture is incomplete" >&2
    exit 1
fi
kill "$NGINX_PID"
wait "$NGINX_PID" 2>/dev/null || true
grep -h "timed out" "$TMP/nginx-error.log" | sed 's/^/   nginx: /' || true

# -------------------------------------------------------------------- check
# Per TCP connection (tshark's view, independent of wsclose): the request
# path, the first FIN/RST, who sent it, and the silence before it.
echo "== tshark: how each connection ended"
tshark -r "$TMP/$OUT" -o tcp.desegment_tcp_streams:TRUE -T fields -E separator='|' \
    -e tcp.stream -e frame.time_epoch -e tcp.srcport -e tcp.dstport \
    -e tcp.flags.fin -e tcp.flags.reset -e http.request.uri -e websocket.opcode 2>/dev/null |
    awk -F'|' -v nginx=$NGINX_PORT -v backend=$BACKEND_PORT -v want=$TIMEOUT_S \
        -v idle_n=$IDLE -v talk_n=$TALK '
    function is_set(f) { return f == "1" || f == "True" }
    {
        s = $1
        if ($7 != "") uri[s] = $7
        if (!(s in port)) port[s] = ($4 == nginx || $4 == backend) ? $4 : $3
        if ($8 ~ /(^|,)8(,|$)/) closes[s]++
        if (!(s in endsrc) && (is_set($5) || is_set($6))) {
            endsrc[s] = $3; endkind[s] = is_set($6) ? "RST" : "FIN"
            gap[s] = $2 - last[s]
        }
        last[s] = $2
    }
    END {
        bad = 0
        for (s in port) {
            leg = (port[s] == nginx) ? "client leg  " : "upstream leg"
            # nginx is the server of a client leg (source port 18800) and the
            # client of an upstream leg (destination port 18801).
            by_nginx = (port[s] == nginx) ? (endsrc[s] == nginx) : (endsrc[s] != backend)
            printf "   %-13s %-16s first %s by %-7s after %.3f s silence, %d close frames\n",
                leg, uri[s], endkind[s], (by_nginx ? "nginx" : (port[s] == nginx ? "client" : "backend")),
                gap[s], closes[s] + 0
            if (uri[s] ~ /idle=/) {
                if (endkind[s] != "FIN" || !by_nginx || gap[s] < want - 0.1 || gap[s] > want + 0.35 || closes[s] > 0) bad++
                idle++
            } else if (uri[s] ~ /talk=/) {
                if (closes[s] != 2) bad++
                talk++
            } else bad++
        }
        if (bad || idle != 2 * idle_n || talk != 2 * talk_n) {
            printf "middlebox.sh: unexpected capture (%d idle legs, %d talking legs, %d wrong)\n", idle, talk, bad > "/dev/stderr"
            exit 1
        }
    }' | sort

chmod 644 "$TMP/$OUT"
mv -f "$TMP/$OUT" "$SAMPLES/$OUT"
printf '== %s (%s bytes, %s packets)\n' "$OUT" "$(stat -c %s "$SAMPLES/$OUT")" \
    "$(capinfos -c -M "$SAMPLES/$OUT" | sed -n 's/^Number of packets: *//p')"
