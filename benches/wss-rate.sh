#!/usr/bin/env bash
# Cost of decrypting wss (issue 9): throughput of `analyze --keylog` against
# plaintext analysis of the same traffic, and memory per decrypted connection.
#
#   sudo benches/wss-rate.sh [rate] [bench] [mem]   # default: rate mem
#
#   rate  N clients (CLIENTS, default 20) exchange the same scripted messages
#         (text and binary of 100 B, 2 KB and 30 KB, echoed by the server;
#         ROUNDS per client, default 46, about 150 MB of payload in all) with
#         a python `websockets` server, then close cleanly; once over ws, once
#         over wss TLS 1.3 TLS_AES_128_GCM_SHA256, and (EXTRA=1, the default)
#         over TLS 1.3 TLS_CHACHA20_POLY1305_SHA256 and TLS 1.2
#         ECDHE-ECDSA-AES128-GCM-SHA256. permessage-deflate off, so payloads
#         match. The ws and TLS 1.3 AES captures are also cut into 1448-byte
#         TCP segments (-mss1448: as off a NIC; on lo, GSO keeps segments up
#         to 64 KB, so TLS records seldom span two). Then a check that the
#         verdicts and frame counts of ws and every decrypted capture agree,
#         and one hyperfine run: analyze each capture (wss with and without
#         keys) and `cat` each file.
#   bench the hyperfine run of `rate` again, on the captures it left in OUT.
#   mem   MEM_CLIENTS (default 2000) clients connected at once (each sends a
#         few messages, waits until all have, then all close cleanly), over
#         ws and over wss TLS 1.3 AES-128-GCM; three messages of 100 B
#         ("tiny"), of 100 B and 2 KB ("small"), and with a 30 KB one added
#         ("big": full 16 KiB records); "big" also cut into 1448-byte
#         segments ("big-mss1448"). Peak RSS of analyze (/usr/bin/time -v,
#         median of MEM_RUNS, default 3) on ws, on wss with keys, wss without
#         keys, and ws given the wss key log (the key log's own cost);
#         (wss with keys - ws) / connections.
#
# Captures go to OUT (default benches/out/, which nothing tracks: never
# commit it), and the binary is built there from a commit (REV, default
# HEAD; or BIN=path to measure a given binary). tcpdump on lo, -s 0
# -B 65536; a capture the kernel dropped packets from is an error. Must run
# as root. Network: 127.0.0.1 only, ports 18850-18859. Everything runs under
# nice (NICE, default 10).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/benches/out}"
PY="${PYTHON:-python3}"
NICE="${NICE:-10}"
CLIENTS="${CLIENTS:-20}"
ROUNDS="${ROUNDS:-46}"
EXTRA="${EXTRA:-1}"
MEM_CLIENTS="${MEM_CLIENTS:-2000}"
MEM_RUNS="${MEM_RUNS:-3}"
RUNS="${RUNS:-20}"
WHAT=("$@")
[ ${#WHAT[@]} -gt 0 ] || WHAT=(rate mem)

if [ "$(id -u)" != 0 ]; then
    echo "wss-rate.sh: must run as root (tcpdump on lo)" >&2
    exit 1
fi
for tool in tcpdump openssl "$PY" hyperfine /usr/bin/time ss timeout; do
    command -v "$tool" >/dev/null || { echo "wss-rate.sh: $tool not found" >&2; exit 1; }
done
WS_VERSION="$(sed -n 's/^websockets==//p' "$ROOT/samples/peers/requirements.txt")"
if ! "$PY" -c "import websockets, sys; sys.exit(websockets.__version__ != '$WS_VERSION')" 2>/dev/null; then
    echo "== installing samples/peers/requirements.txt"
    "$PY" -m pip install -q -r "$ROOT/samples/peers/requirements.txt"
fi
# Each side holds MEM_CLIENTS sockets.
[ "$(ulimit -n)" -gt $((MEM_CLIENTS + 100)) ] || ulimit -n "$(ulimit -Hn)"

mkdir -p "$OUT"
# The binary measured: BIN if given, else a release build of commit REV
# (default HEAD) exported to OUT/src, so that edits in progress in the
# working tree, and rebuilds of target/ while this runs, are not measured.
if [ -z "${BIN:-}" ]; then
    REV="$(git -C "$ROOT" rev-parse "${REV:-HEAD}")"
    rm -rf "$OUT/src"
    mkdir -p "$OUT/src"
    git -C "$ROOT" archive "$REV" | tar -x -C "$OUT/src"
    echo "== building $REV in $OUT/src"
    (cd "$OUT/src" && CARGO_TARGET_DIR="$OUT/target" nice -n "$NICE" cargo build --release --quiet)
    BIN="$OUT/target/release/wsclose"
fi
echo "== measuring $BIN ($("$BIN" --version 2>/dev/null || true))"

CAP_PID=""
SRV_PID=""
cleanup() {
    [ -n "$CAP_PID" ] && kill "$CAP_PID" 2>/dev/null || true
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
}
trap cleanup EXIT

# A throwaway self-signed ECDSA P-256 certificate for "localhost".
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

# TLS 1.3 suites cannot be chosen from python's ssl module: an OpenSSL
# configuration given to the server process alone limits them.
for suite in TLS_AES_128_GCM_SHA256 TLS_CHACHA20_POLY1305_SHA256; do
    cat >"$OUT/$suite.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = $suite
EOF
done

cat >"$OUT/peer.py" <<'EOF'
"""Scripted WebSocket traffic: `server` echoes every message and exits once
CONNS connections have ended; `clients` runs CONNS clients."""
import argparse, asyncio, random, ssl, sys, time
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

ap = argparse.ArgumentParser()
ap.add_argument("role", choices=["server", "clients"])
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--tls", choices=["none", "tls13", "tls12"], default="none")
ap.add_argument("--cert")
ap.add_argument("--key")
ap.add_argument("--keys", help="client key log")
ap.add_argument("--conns", type=int, default=20)
ap.add_argument("--rounds", type=int, default=1)
ap.add_argument("--round", default="100x20,2000x10,30000x2",
                help="one round: SIZExCOUNT,..., interleaved, text and binary alternating")
ap.add_argument("--hold", action="store_true",
                help="every client waits until all have sent their messages before closing")
ap.add_argument("--connecting", type=int, default=100, help="handshakes at once")
a = ap.parse_args()

common = dict(compression=None, ping_interval=None, max_size=None, close_timeout=30)


async def server():
    ctx = None
    if a.tls != "none":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.tls == "tls12":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ended = 0
    done = asyncio.Event()

    async def echo(ws):
        nonlocal ended
        try:
            async for m in ws:
                await ws.send(m)
        finally:
            ended += 1
            if ended == a.conns:
                done.set()

    async with serve(echo, "127.0.0.1", a.port, ssl=ctx, backlog=4096, **common):
        print("listening", flush=True)
        await done.wait()
        await asyncio.sleep(0.5)


def messages():
    """One round's messages, the same in every run (seeded)."""
    rnd = random.Random(9)
    sizes = []
    for part in a.round.split(","):
        size, count = part.split("x")
        sizes.append([int(size)] * int(count))
    order = []
    while any(sizes):  # interleave: 100, 2000, 30000, 100, 2000, ...
        for s in sizes:
            if s:
                order.append(s.pop())
    out = []
    for i, size in enumerate(order):
        if i % 2 == 0:
            out.append("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(size)))
        else:
            out.append(rnd.randbytes(size))
    return out


async def clients():
    ctx = None
    scheme = "ws"
    if a.tls != "none":
        scheme = "wss"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(a.cert)
        ctx.keylog_filename = a.keys
    msgs = messages()
    payload = sum(len(m.encode() if isinstance(m, str) else m) for m in msgs)
    connecting = asyncio.Semaphore(a.connecting)
    ready = 0
    all_ready = asyncio.Event()
    frames = 0

    async def one(i):
        nonlocal ready, frames
        async with connecting:
            ws = await connect(f"{scheme}://127.0.0.1:{a.port}/bench/{i}", ssl=ctx,
                               server_hostname="localhost" if ctx else None,
                               open_timeout=120, **common)
        for _ in range(a.rounds):
            for m in msgs:
                await ws.send(m)
            for m in msgs:
                got = await ws.recv()
                assert len(got) == len(m)
            frames += len(msgs)
        if a.hold:
            ready += 1
            if ready == a.conns:
                all_ready.set()
            await all_ready.wait()
        await ws.close(1000, "done")

    t = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(a.conns)))
    dt = time.monotonic() - t
    total = 2 * payload * a.rounds * a.conns
    print(f"clients: {a.conns} conns, {frames} messages each way, payload {total} B "
          f"(both directions), {dt:.1f} s", flush=True)
    print(f"PAYLOAD {total} MESSAGES {2 * frames}", flush=True)


asyncio.run(server() if a.role == "server" else clients())
EOF

# capture NAME PORT TLS SUITE CLIENT-ARGS...: the server (SUITE: an OpenSSL
# config limiting its TLS 1.3 suites, or -), tcpdump on lo, the clients;
# OUT/NAME.pcap, OUT/NAME.keys (wss), OUT/NAME.payload (payload bytes).
capture() {
    local name="$1" port="$2" tls="$3" suite="$4"
    shift 4
    local pcap="$OUT/$name.pcap" keys="$OUT/$name.keys" log="$OUT/$name.tcpdump.log"
    local conns
    conns=$(sed -n 's/.*--conns \([0-9]*\).*/\1/p' <<<"$*")
    rm -f "$pcap" "$keys" "$log"
    echo "== $name: port $port, $tls ${suite#-}"
    local env=()
    [ "$suite" != - ] && env=(OPENSSL_CONF="$OUT/$suite.cnf")
    env "${env[@]}" nice -n "$NICE" "$PY" "$OUT/peer.py" server --port "$port" --tls "$tls" \
        --cert "$OUT/cert.pem" --key "$OUT/key.pem" --conns "$conns" >"$OUT/$name.server.log" 2>&1 &
    SRV_PID=$!
    local i
    for ((i = 0; i < 200; i++)); do
        [ -n "$(ss -Hltn "sport = :$port")" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || { cat "$OUT/$name.server.log" >&2; exit 1; }
        sleep 0.05
    done
    : >"$log"
    tcpdump -Z root -i lo -s 0 -B 65536 -w "$pcap" "tcp port $port" 2>"$log" &
    CAP_PID=$!
    for ((i = 0; i < 100; i++)); do
        grep -q "listening on" "$log" && break
        sleep 0.05
    done
    sleep 0.3
    timeout 900 nice -n "$NICE" "$PY" "$OUT/peer.py" clients --port "$port" --tls "$tls" \
        --cert "$OUT/cert.pem" --keys "$keys" "$@" | tee "$OUT/$name.clients.log" | grep -v '^PAYLOAD'
    wait "$SRV_PID"
    SRV_PID=""
    sleep 1 # the last ACKs
    kill -INT "$CAP_PID"
    wait "$CAP_PID" || true
    CAP_PID=""
    grep -E 'packets (captured|received|dropped)' "$log" | sed 's/^/   tcpdump: /'
    if ! grep -Eq '^0 packets dropped by kernel' "$log"; then
        echo "wss-rate.sh: the kernel dropped packets, $pcap is incomplete" >&2
        exit 1
    fi
    awk '/^PAYLOAD/ {print $2}' "$OUT/$name.clients.log" >"$OUT/$name.payload"
    echo "   $pcap: $(stat -c %s "$pcap") bytes"
}

# verdicts REF OTHER...: outcomes and per-connection frame counts (by path,
# /bench/I) of each capture's JSON against REF's.
verdicts() {
    "$PY" - "$@" <<'EOF'
import collections, json, sys
def load(p):
    d = json.load(open(p))
    conns, findings, first = {}, collections.Counter(), collections.Counter()
    for c in d["connections"]:
        path = (c.get("handshake") or {}).get("path")
        cl = c["close"]
        codes = tuple((f or {}).get("code") for f in (cl.get("client_frame"), cl.get("server_frame")))
        conns[path] = (cl["outcome"], cl.get("initiator"), codes, c["frames"]["client"], c["frames"]["server"])
        findings.update(f["kind"] for f in c["findings"])
        first[(cl.get("tcp_end") or {}).get("by")] += 1
    return d["totals"]["outcomes"], conns, findings, first
def show(p, out, findings, first):
    name = p.rsplit("/", 1)[-1]
    return (f"   {name}: outcomes {dict((k, v) for k, v in out.items() if v)}; findings {dict(findings)}; "
            f"TCP ended first by {dict(first)}")
ref_out, ref, ref_f, ref_first = load(sys.argv[1])
print(show(sys.argv[1], ref_out, ref_f, ref_first))
bad = 0
for p in sys.argv[2:]:
    out, conns, f, first = load(p)
    diff = [k for k in set(ref) | set(conns) if ref.get(k) != conns.get(k)]
    bad += bool(diff)
    print(show(p, out, f, first))
    print("      " + ("same outcome, initiator, close codes and frame counts (by type and payload"
                     " bytes, each direction) on every connection" if not diff
                     else f"{len(diff)} connections differ, e.g. {diff[:3]}"))
    for k in diff[:3]:
        print(f"      {k}: ref {ref.get(k)}\n      {' ' * len(k)}  got {conns.get(k)}")
frames = sum(v[3]["text"] + v[3]["binary"] + v[4]["text"] + v[4]["binary"] for v in ref.values())
payload = sum(v[3]["payload_bytes"] + v[4]["payload_bytes"] for v in ref.values())
print(f"   {len(ref)} connections, {frames} data frames, {payload} payload bytes (incl. close frames)")
sys.exit(1 if bad else 0)
EOF
}

rate() {
    local names=(ws wss13-aes128)
    capture ws 18850 none - --conns "$CLIENTS" --rounds "$ROUNDS"
    capture wss13-aes128 18851 tls13 TLS_AES_128_GCM_SHA256 --conns "$CLIENTS" --rounds "$ROUNDS"
    if [ "$EXTRA" = 1 ]; then
        capture wss13-chacha 18852 tls13 TLS_CHACHA20_POLY1305_SHA256 --conns "$CLIENTS" --rounds "$ROUNDS"
        capture wss12-aes128 18853 tls12 - --conns "$CLIENTS" --rounds "$ROUNDS"
        names+=(wss13-chacha wss12-aes128)
    fi
    # The same traffic as a NIC with a 1448-byte MSS would show it (records
    # spanning segments); see resegment.
    local n
    for n in ws wss13-aes128; do
        resegment "$OUT/$n.pcap" "$OUT/$n-mss1448.pcap" 1448
        cp "$OUT/$n.payload" "$OUT/$n-mss1448.payload"
        [ -f "$OUT/$n.keys" ] && cp "$OUT/$n.keys" "$OUT/$n-mss1448.keys"
    done
    names+=(ws-mss1448 wss13-aes128-mss1448)
    echo "== verdicts (ws against decrypted wss)"
    "$BIN" analyze "$OUT/ws.pcap" --json "$OUT/ws.json" >/dev/null
    local jsons=()
    for n in "${names[@]:1}"; do
        if [ -f "$OUT/$n.keys" ]; then
            "$BIN" analyze "$OUT/$n.pcap" --keylog "$OUT/$n.keys" --json "$OUT/$n.json" >/dev/null
        else
            "$BIN" analyze "$OUT/$n.pcap" --json "$OUT/$n.json" >/dev/null
        fi
        jsons+=("$OUT/$n.json")
    done
    verdicts "$OUT/ws.json" "${jsons[@]}"
    "$PY" - "$OUT"/wss*.json <<'EOF'
import json, sys
for p in sys.argv[1:]:
    d = json.load(open(p))
    t = {(c["tls"]["version"], c["tls"]["cipher"], c["tls"]["decrypted"]) for c in d["connections"]}
    print(f"   {p.rsplit('/', 1)[-1]}: {sorted(t)}")
EOF
    bench "${names[@]}"
}

# bench NAME...: the hyperfine run over the captures of `rate` (ws first).
bench() {
    local names=("$@") n
    echo "== hyperfine ($RUNS runs each, nice -n $NICE), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    local cmds=()
    for n in "${names[@]}"; do
        if [ ! -f "$OUT/$n.keys" ]; then
            cmds+=(-n "analyze $n" "$BIN analyze $OUT/$n.pcap --json /dev/null")
            continue
        fi
        cmds+=(-n "analyze $n --keylog" "$BIN analyze $OUT/$n.pcap --keylog $OUT/$n.keys --json /dev/null")
        cmds+=(-n "analyze $n (no keys)" "$BIN analyze $OUT/$n.pcap --json /dev/null")
    done
    for n in "${names[@]}"; do
        cmds+=(-n "cat $n" "cat $OUT/$n.pcap")
    done
    nice -n "$NICE" hyperfine -N --style basic --warmup 2 --runs "$RUNS" \
        --export-json "$OUT/hyperfine.json" "${cmds[@]}" >"$OUT/hyperfine.log" 2>&1 ||
        { cat "$OUT/hyperfine.log" >&2; exit 1; }
    echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$PY" - "$OUT" "${names[@]}" <<'EOF'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
res = {r["command"]: r for r in json.load(open(f"{out}/hyperfine.json"))["results"]}
size = {n: os.path.getsize(f"{out}/{n}.pcap") for n in names}
payload = {n: int(open(f"{out}/{n}.payload").read()) for n in names}
print("   ratios: the command's time over that of `analyze ws` (`analyze ws-mss1448` for the"
      " -mss1448 captures), per payload byte (same payload) and per captured byte; by mean wall"
      " time, by min, and by mean user+sys CPU time")
print(f"   {'command':<42} {'file MB':>7} {'mean s':>7} {'± s':>6} {'min s':>6} {'cpu s':>6} "
      f"{'file MB/s':>9} {'payl. MB/s':>10} {'payl. ratio':>11} {'file ratio':>10} {'min ratio':>9} {'cpu ratio':>9}")
cpu = lambda r: r["user"] + r["system"]
for cmd, r in res.items():
    n = cmd.split()[1]
    base = res["analyze ws-mss1448" if n.endswith("-mss1448") and "analyze ws-mss1448" in res else "analyze ws"]
    ws = "ws-mss1448" if base["command"].endswith("mss1448") else "ws"
    mb, pmb = size[n] / 1e6, payload[n] / 1e6
    per_byte = (r["mean"] / size[n]) / (base["mean"] / size[ws])
    print(f"   {cmd:<42} {mb:>7.1f} {r['mean']:>7.3f} {r['stddev']:>6.3f} {r['min']:>6.3f} {cpu(r):>6.3f} "
          f"{mb / r['mean']:>9.0f} {pmb / r['mean']:>10.0f} {r['mean'] / base['mean']:>11.2f} {per_byte:>10.2f} "
          f"{r['min'] / base['min']:>9.2f} {cpu(r) / cpu(base):>9.2f}")
print(f"   payload (both directions): " + ", ".join(f"{n} {payload[n] / 1e6:.1f} MB" for n in names))
EOF
}

# maxrss CMD...: median peak RSS (KiB) of MEM_RUNS runs.
maxrss() {
    local i v=()
    for ((i = 0; i < MEM_RUNS; i++)); do
        nice -n "$NICE" /usr/bin/time -v -o "$OUT/time.txt" "$@" >/dev/null 2>&1
        v+=("$(awk '/Maximum resident set size/ {print $6}' "$OUT/time.txt")")
    done
    printf '%s\n' "${v[@]}" | sort -n | sed -n "$(((MEM_RUNS + 1) / 2))p"
}

mem_one() {
    local tag="$1" round="$2" port_ws="$3" port_wss="$4"
    local ws="mem-$tag-ws" wss="mem-$tag-wss13"
    local args=(--conns "$MEM_CLIENTS" --rounds 1 --round "$round" --hold)
    capture "$ws" "$port_ws" none - "${args[@]}"
    capture "$wss" "$port_wss" tls13 TLS_AES_128_GCM_SHA256 "${args[@]}"
    mem_measure "$tag" "$ws" "$wss" "$wss"
}

# resegment IN OUT MSS: IN with every TCP payload longer than MSS cut into
# MSS-byte segments (same timestamp, sequence numbers advanced, FIN and PSH
# on the last piece; TCP checksums left stale, which wsclose does not
# read), as a capture off a NIC with that MSS would show it.
resegment() {
    "$PY" - "$@" <<'EOF'
import struct, sys
src, dst, mss = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ip_sum(h):
    s = sum(struct.unpack(f">{len(h) // 2}H", h))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return struct.pack(">H", ~s & 0xffff)
with open(src, "rb") as f, open(dst, "wb") as o:
    o.write(f.read(24))
    while h := f.read(16):
        sec, usec, incl, _ = struct.unpack("<IIII", h)
        b = f.read(incl)
        ip = b[14:]; ihl = (ip[0] & 15) * 4; total = struct.unpack(">H", ip[2:4])[0]
        tcp = ip[ihl:total]; doff = (tcp[12] >> 4) * 4; payload = tcp[doff:]
        if len(payload) <= mss:
            o.write(h + b); continue
        seq = struct.unpack(">I", tcp[4:8])[0]
        for off in range(0, len(payload), mss):
            chunk = payload[off:off + mss]
            last = off + mss >= len(payload)
            flags = tcp[13] if last else tcp[13] & ~0x09
            t = tcp[:4] + struct.pack(">I", (seq + off) & 0xffffffff) + tcp[8:13] + bytes([flags]) + tcp[14:doff]
            iph = ip[:2] + struct.pack(">H", ihl + doff + len(chunk)) + ip[4:10] + b"\0\0" + ip[12:ihl]
            iph = iph[:10] + ip_sum(iph) + iph[12:]
            pkt = b[:14] + iph + t + chunk
            o.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + pkt)
EOF
}

# mem_measure TAG WS WSS KEYS: verdicts and peak RSS of OUT/WS.pcap against
# OUT/WSS.pcap, decrypted with OUT/KEYS.keys.
mem_measure() {
    local tag="$1" ws="$2" wss="$3" keys="$OUT/$4.keys"
    echo "== memory: $tag ($ws, $wss)"
    "$BIN" analyze "$OUT/$ws.pcap" --json "$OUT/$ws.json" >/dev/null
    "$BIN" analyze "$OUT/$wss.pcap" --keylog "$keys" --json "$OUT/$wss.json" >/dev/null
    verdicts "$OUT/$ws.json" "$OUT/$wss.json"
    "$PY" - "$OUT/$ws.pcap" "$OUT/$wss.pcap" <<'EOF'
import struct, sys
# The most connections open at once: SYNs minus FINs seen, over time.
for p in sys.argv[1:]:
    f = open(p, "rb"); f.read(24); opened = 0; ended = set(); peak = 0
    while h := f.read(16):
        _, _, incl, _ = struct.unpack("<IIII", h); b = f.read(incl)
        ip = b[14:]; tcp = ip[(ip[0] & 15) * 4:]; flags = tcp[13]
        if flags & 0x12 == 0x02: opened += 1
        if flags & 0x05: ended.add(frozenset([ip[12:16] + tcp[0:2], ip[16:20] + tcp[2:4]]))
        peak = max(peak, opened - len(ended))
    print(f"   {p.rsplit('/', 1)[-1]}: {opened} connections, at most {peak} open at once")
EOF
    local k_ws k_wss k_nokeys k_wskeys
    k_ws=$(maxrss "$BIN" analyze "$OUT/$ws.pcap" --json /dev/null)
    k_wss=$(maxrss "$BIN" analyze "$OUT/$wss.pcap" --keylog "$keys" --json /dev/null)
    k_nokeys=$(maxrss "$BIN" analyze "$OUT/$wss.pcap" --json /dev/null)
    k_wskeys=$(maxrss "$BIN" analyze "$OUT/$ws.pcap" --keylog "$keys" --json /dev/null)
    echo "   peak RSS (KiB, median of $MEM_RUNS): ws $k_ws, wss --keylog $k_wss, wss no keys $k_nokeys, ws given the wss key log $k_wskeys"
    echo "   MEM $tag $MEM_CLIENTS $k_ws $k_wss $k_nokeys $k_wskeys" >>"$OUT/mem.txt"
    awk -v n="$MEM_CLIENTS" -v a="$k_ws" -v b="$k_wss" -v c="$k_nokeys" -v d="$k_wskeys" 'BEGIN {
        printf "   per connection: decrypted wss - ws %.0f B; of which key log %.0f B; undecrypted wss - ws %.0f B\n",
            (b - a) * 1024 / n, (d - a) * 1024 / n, (c - a) * 1024 / n }'
}

mem() {
    rm -f "$OUT/mem.txt"
    mem_one tiny "100x3" 18858 18859
    mem_one small "100x2,2000x1" 18854 18855
    mem_one big "100x2,2000x1,30000x1" 18856 18857
    resegment "$OUT/mem-big-ws.pcap" "$OUT/mem-big1448-ws.pcap" 1448
    resegment "$OUT/mem-big-wss13.pcap" "$OUT/mem-big1448-wss13.pcap" 1448
    mem_measure big-mss1448 mem-big1448-ws mem-big1448-wss13 mem-big-wss13
}

for w in "${WHAT[@]}"; do
    case "$w" in
        rate) rate ;;
        bench) # hyperfine again over the captures a former `rate` left in OUT
            names=(ws)
            for n in wss13-aes128 wss13-chacha wss12-aes128 ws-mss1448 wss13-aes128-mss1448; do
                [ -f "$OUT/$n.pcap" ] && names+=("$n")
            done
            bench "${names[@]}" ;;
        mem) mem ;;
        *) echo "wss-rate.sh: unknown part '$w' (rate bench mem)" >&2; exit 2 ;;
    esac
done
