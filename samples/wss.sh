#!/usr/bin/env bash
# Make the wss samples: a python `websockets` client and server over TLS on
# loopback, the client writing its key log (SSLContext.keylog_filename),
# captured with tcpdump.
#
#   sudo samples/wss.sh        # writes samples/wss-tls13.{pcap,keys}
#                              #    and samples/wss-tls12.{pcap,keys}
#
# TLS 1.3 with OpenSSL's default suite choice (TLS_AES_256_GCM_SHA384);
# TLS 1.2 forced (maximum_version) with ECDHE-RSA-AES128-GCM-SHA256. The
# certificate is a throwaway self-signed RSA one for "localhost", made here.
# Must run as root (packet capture). Network: 127.0.0.1 only, ports 18830
# (TLS 1.3) and 18831 (TLS 1.2).
set -euo pipefail

SAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
if [ "$(id -u)" != 0 ]; then
    echo "wss.sh: must run as root (tcpdump on lo)" >&2
    exit 1
fi
for tool in tcpdump openssl "$PY" timeout; do
    command -v "$tool" >/dev/null || { echo "wss.sh: $tool not found" >&2; exit 1; }
done

TMP="$(mktemp -d)"
CAP_PID=""
cleanup() {
    [ -n "$CAP_PID" ] && kill "$CAP_PID" 2>/dev/null || true
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

capture() {
    local mode="$1" port="$2" out="$SAMPLES/wss-$1"
    rm -f "$TMP/keys"
    tcpdump -Z root -i lo -s 0 -U --immediate-mode -w "$TMP/cap.pcap" \
        "tcp port $port" 2>"$TMP/tcpdump.log" &
    CAP_PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$TMP/tcpdump.log" && break
        sleep 0.05
    done
    sleep 0.3
    timeout 30 "$PY" "$TMP/peer.py" "$mode" "$port" "$TMP/keys" "$TMP/cert.pem" "$TMP/key.pem"
    sleep 1
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=""
    cp "$TMP/cap.pcap" "$out.pcap"
    cp "$TMP/keys" "$out.keys"
    echo "== $out.pcap ($(stat -c %s "$out.pcap") bytes), $out.keys ($(wc -l <"$out.keys") lines)"
}

capture tls13 18830
capture tls12 18831
