#!/usr/bin/env bash
# Make the wss samples: real WebSocket peers over TLS on loopback, each
# client (or the whole process) writing its key log, captured with tcpdump.
#
#   sudo samples/wss.sh [NAME...]     # default: all, in this order
#
#   tls13       samples/wss-tls13.{pcap,keys}: python `websockets` client and
#               server (SSLContext.keylog_filename on the client), TLS 1.3
#               with OpenSSL's default suite (TLS_AES_256_GCM_SHA384), clean
#               close from the client; port 18830
#   tls12       samples/wss-tls12.{pcap,keys}: the same, TLS 1.2 forced
#               (maximum_version) with ECDHE-RSA-AES128-GCM-SHA256; port 18831
#   node        samples/wss-node-tls13.{pcap,keys}: node `ws` client and server
#               in one process run with `node --tls-keylog`, TLS 1.3 with
#               TLS_CHACHA20_POLY1305_SHA256 (the client's only offer); a
#               clean close from the server and a server terminate() (abrupt
#               end); peers/wss_node_peer.js; port 18832
#   unanswered  samples/wss-unanswered.{pcap,keys}: python `websockets` client
#               over TLS 1.3 against a hand-written python ssl server that never
#               answers the close frame (shuts TLS down 0.2 s later);
#               peers/wss_peers.py unanswered; port 18833
#   alpn        samples/wss-alpn-h2.{pcap,keys}: python `websockets` client and
#               server over TLS 1.3, the client offering ALPN ["h2",
#               "http/1.1"] (no ALPN selected), clean close from the client;
#               peers/wss_peers.py alpn; port 18836
#   dsb         samples/wss-tls13-dsb.pcapng: wss-node-tls13.pcap with its key
#               log embedded as a Decryption Secrets Block
#               (editcap --inject-secrets); no capture
#   nginx       samples/wss-nginx-idle.{pcap,keys}: nginx terminating TLS 1.3
#               (TLS_AES_128_GCM_SHA256, self-signed cert, proxy_read_timeout
#               2s) in front of a plaintext python `websockets` echo server;
#               3 idle wss clients (cut by nginx after 2 s) and 1 talking one,
#               keys from the clients; peers/wss_peers.py nginx-clients and
#               peers/proxy_clients.py server; ports 18834 (TLS), 18835
#
# The certificate is a throwaway self-signed RSA-2048 one for "localhost",
# made here; every client connects to 127.0.0.1 with the SNI "localhost".
# After each capture, peers/wss_facts.py prints what tshark sees (decrypted
# with the key log). Must run as root (packet capture). Network: 127.0.0.1
# only, ports 18830-18836.
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
if [ "$(id -u)" != 0 ]; then
    echo "wss.sh: must run as root (tcpdump on lo)" >&2
    exit 1
fi
PEERS="$SAMPLES/peers"
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(tls13 tls12 node unanswered alpn dsb nginx)
for n in "${NAMES[@]}"; do
    case "$n" in
        tls13 | tls12 | node | unanswered | alpn | dsb | nginx) ;;
        *) echo "wss.sh: unknown sample '$n' (tls13 tls12 node unanswered alpn dsb nginx)" >&2; exit 2 ;;
    esac
done
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
for tool in tcpdump tshark editcap openssl "$PY" node "$NGINX" ss timeout; do
    command -v "$tool" >/dev/null || { echo "wss.sh: $tool not found" >&2; exit 1; }
done
if [ ! -d "$PEERS/node_modules/ws" ]; then
    echo "== installing node ws (samples/peers/package-lock.json)"
    (cd "$PEERS" && npm ci --silent)
fi

TMP="$(mktemp -d)"
CAP_PID=""
BG_PIDS=()
cleanup() {
    local p
    [ -n "$CAP_PID" ] && kill "$CAP_PID" 2>/dev/null || true
    for p in "${BG_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null

cat >"$TMP/peer.py" <<'EOF'
import asyncio, ssl, sys
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

mode, port, keys, cert, key = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]

async def echo(ws):
    async for m in ws:
        await ws.send(m)

async def main():
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(cert)
    cctx.keylog_filename = keys
    if mode == "tls12":
        cctx.maximum_version = ssl.TLSVersion.TLSv1_2
        cctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    else:
        cctx.minimum_version = ssl.TLSVersion.TLSv1_3
    async with serve(echo, "127.0.0.1", port, ssl=sctx, ping_interval=None):
        async with connect(f"wss://127.0.0.1:{port}/chat", ssl=cctx,
                           server_hostname="localhost", ping_interval=None) as ws:
            for text in ["hello", "over tls", "x" * 300]:
                await ws.send(text)
                await ws.recv()
            await asyncio.sleep(0.3)
            await ws.close(1000, "bye")
        await asyncio.sleep(0.2)

asyncio.run(main())
EOF

# start_capture FILTER: tcpdump on lo into $TMP/cap.pcap, ready when it
# says it listens. Immediate mode with a 4096-byte snap length (every packet
# here is smaller; libpcap's immediate-mode ring slots are snaplen-sized, and
# with -s 0 on lo, MTU 65536, a burst could overflow it).
start_capture() {
    rm -f "$TMP/cap.pcap" "$TMP/tcpdump.log"
    tcpdump -Z root -i lo -s 4096 -B 16384 -U --immediate-mode -w "$TMP/cap.pcap" \
        "$1" 2>"$TMP/tcpdump.log" &
    CAP_PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$TMP/tcpdump.log" && break
        sleep 0.05
    done
    sleep 0.3
}

# stop_capture OUT KEYS: stop tcpdump, check nothing was dropped or cut
# short, copy the capture to samples/OUT.pcap and the key log to
# samples/OUT.keys, print tshark's view of it.
stop_capture() {
    local out="$SAMPLES/$1" keys="$2"
    sleep 1 # the last ACKs
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=""
    if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$TMP/tcpdump.log"; then
        echo "wss.sh: the kernel dropped packets, $1 is incomplete" >&2
        exit 1
    fi
    if [ -n "$(tshark -r "$TMP/cap.pcap" -Y 'frame.cap_len < frame.len' -T fields -e frame.number 2>/dev/null)" ]; then
        echo "wss.sh: packets cut by the snap length in $1" >&2
        exit 1
    fi
    cp "$TMP/cap.pcap" "$out.pcap"
    cp "$keys" "$out.keys"
    chmod 644 "$out.pcap" "$out.keys"
    echo "== $out.pcap ($(stat -c %s "$out.pcap") bytes), $out.keys ($(wc -l <"$out.keys") lines)"
    "$PY" "$PEERS/wss_facts.py" "$out.pcap" "$out.keys" 2>/dev/null | sed 's/^/   /'
}

capture() {
    local mode="$1" port="$2"
    rm -f "$TMP/keys"
    start_capture "tcp port $port"
    timeout 30 "$PY" "$TMP/peer.py" "$mode" "$port" "$TMP/keys" "$TMP/cert.pem" "$TMP/key.pem"
    stop_capture "wss-$mode" "$TMP/keys"
}

make_node() {
    rm -f "$TMP/keys"
    start_capture "tcp port 18832"
    NODE_PATH="$PEERS/node_modules" timeout 30 node --tls-keylog="$TMP/keys" \
        "$PEERS/wss_node_peer.js" --port 18832 --cert "$TMP/cert.pem" --key "$TMP/key.pem" \
        --cipher TLS_CHACHA20_POLY1305_SHA256 --idle-ms 1200 2>&1 |
        grep -v -e 'Warning: Using --tls-keylog' -e 'trace-warnings' | sed 's/^/   peer: /'
    stop_capture wss-node-tls13 "$TMP/keys"
}

make_unanswered() {
    rm -f "$TMP/keys"
    start_capture "tcp port 18833"
    timeout 30 "$PY" "$PEERS/wss_peers.py" unanswered --port 18833 --cert "$TMP/cert.pem" \
        --key "$TMP/key.pem" --keys "$TMP/keys" --idle 1.5 2>&1 | sed 's/^/   peer: /'
    stop_capture wss-unanswered "$TMP/keys"
}

make_alpn() {
    rm -f "$TMP/keys"
    start_capture "tcp port 18836"
    timeout 30 "$PY" "$PEERS/wss_peers.py" alpn --port 18836 --cert "$TMP/cert.pem" \
        --key "$TMP/key.pem" --keys "$TMP/keys" 2>&1 | sed 's/^/   peer: /'
    stop_capture wss-alpn-h2 "$TMP/keys"
}

make_dsb() {
    local out="$SAMPLES/wss-tls13-dsb.pcapng"
    editcap --inject-secrets "tls,$SAMPLES/wss-node-tls13.keys" \
        "$SAMPLES/wss-node-tls13.pcap" "$out"
    chmod 644 "$out"
    echo "== $out ($(stat -c %s "$out") bytes): wss-node-tls13.pcap with its key log embedded"
    "$PY" "$PEERS/wss_facts.py" "$out" 2>/dev/null | sed 's/^/   /'
}

# wait_listen PORT PID: until something listens on PORT (asked of the kernel,
# no probing connection), or PID dies.
wait_listen() {
    local i
    for ((i = 0; i < 200; i++)); do
        [ -n "$(ss -Hltn "sport = :$1")" ] && return 0
        kill -0 "$2" 2>/dev/null || { echo "wss.sh: process $2 died" >&2; return 1; }
        sleep 0.05
    done
    echo "wss.sh: nothing listens on $1" >&2
    return 1
}

make_nginx() {
    local nginx_port=18834 backend_port=18835 idle=3 talk=1
    rm -f "$TMP/keys"
    mkdir -p "$TMP/nginx"
    "$PY" "$PEERS/proxy_clients.py" server --port $backend_port --conns $((idle + talk)) \
        --max-seconds 60 2>"$TMP/backend.log" &
    local backend_pid=$!
    BG_PIDS+=("$backend_pid")
    wait_listen $backend_port $backend_pid
    # Foreground, one process, every path in $TMP/nginx (nothing under /etc
    # or /var touched); -e so that nginx does not open its compiled-in log.
    cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        location / {
            proxy_pass http://127.0.0.1:$backend_port;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host \$host;
            # Once upgraded, the only timer of an idle tunnel.
            proxy_read_timeout 2s;
        }
    }
}
EOF
    "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/stderr.log" -c "$TMP/nginx/nginx.conf" \
        >"$TMP/nginx/out.log" 2>&1 &
    local nginx_pid=$!
    BG_PIDS+=("$nginx_pid")
    wait_listen $nginx_port $nginx_pid
    start_capture "tcp port $nginx_port or tcp port $backend_port"
    timeout 60 "$PY" "$PEERS/wss_peers.py" nginx-clients --port $nginx_port \
        --cert "$TMP/cert.pem" --keys "$TMP/keys" --idle $idle --talk $talk --stagger 0.7 \
        --interval 0.5 --talk-seconds 5 2>&1 | sed 's/^/   client: /'
    wait "$backend_pid" || true
    sed 's/^/   backend: /' "$TMP/backend.log"
    stop_capture wss-nginx-idle "$TMP/keys"
    kill "$nginx_pid"
    wait "$nginx_pid" 2>/dev/null || true
    grep -h "timed out" "$TMP/nginx/error.log" | sed 's/^/   nginx: /' || true
}

for n in "${NAMES[@]}"; do
    case "$n" in
        tls13) capture tls13 18830 ;;
        tls12) capture tls12 18831 ;;
        node) make_node ;;
        unanswered) make_unanswered ;;
        alpn) make_alpn ;;
        dsb) make_dsb ;;
        nginx) make_nginx ;;
    esac
done
