#!/usr/bin/env python3
"""What is on the wire of a wss (or mixed) capture, per TCP connection, as
tshark sees it (independent of wsclose):

    wss_facts.py CAPTURE [KEYLOG]

With KEYLOG, tshark decrypts (`-o tls.keylog_file:KEYLOG`; a pcapng's
Decryption Secrets Block works without it). Prints per connection: client and
server, TLS version, cipher, SNI, ALPN offered, the request path, WebSocket
frames per side (by opcode), the close frames (side, code, reason, time), the
close_notify alerts seen (decrypted, or a TLS 1.2 encrypted alert), the first
FIN and RST (who, when) and, for the view without keys, the silence before
the final burst (the contract's rule for `encrypted` connections: the run of
trailing records, FINs and RSTs each less than 1 s after the one before;
from the last record before it to its first packet). Times are relative to
the first packet of the capture, plus the epoch of that packet.
"""

import json
import subprocess
import sys
from collections import defaultdict

FIELDS = [
    "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport",
    "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset",
    "tcp.len", "tls.record.content_type", "tls.record.version", "tls.handshake.type",
    "tls.handshake.ciphersuite", "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
    "tls.alert_message.desc", "http.request.uri", "http.response.code", "websocket.opcode",
    "websocket.mask", "websocket.payload.close.status_code", "websocket.payload.close.reason",
]
OPNAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
VERSIONS = {"0x0304": "TLS 1.3", "0x0303": "TLS 1.2", "0x0302": "TLS 1.1", "0x0301": "TLS 1.0"}


def tshark(path, keys):
    args = ["tshark", "-r", path, "-T", "json"]
    if keys:
        args += ["-o", f"tls.keylog_file:{keys}"]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, check=True, capture_output=True).stdout
    return [p["_source"]["layers"] for p in json.loads(out or b"[]")]


def cipher_names(path):
    """IANA names of the cipher suites tshark shows (hex -> name)."""
    out = subprocess.run(["tshark", "-r", path, "-Y", "tls.handshake.type == 2", "-V"],
                         check=True, capture_output=True, text=True).stdout
    names = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Cipher Suite: ") and "(0x" in line:
            name, _, code = line[len("Cipher Suite: "):].rpartition(" (")
            names[int(code.rstrip(")"), 16)] = name
    return names


def one(L, k):
    v = L.get(k)
    return v[0] if v else None


def truthy(v):
    return v in ("1", "True", "true")


def main():
    path = sys.argv[1]
    keys = sys.argv[2] if len(sys.argv) > 2 else None
    pkts = tshark(path, keys)
    ciphers = cipher_names(path)
    if not pkts:
        print("no packets")
        return
    t0 = float(one(pkts[0], "frame.time_epoch"))
    conns = defaultdict(lambda: {"pkts": [], "frames": {"client": defaultdict(int),
                                                        "server": defaultdict(int)},
                                 "closes": [], "notify": {}, "ends": [], "alpn": [],
                                 "sni": None, "version": None, "cipher": None, "uri": None,
                                 "status": None, "client": None, "server": None})
    for L in pkts:
        s = int(one(L, "tcp.stream"))
        c = conns[s]
        t = float(one(L, "frame.time_epoch"))
        src = (one(L, "ip.src") or f"[{one(L, 'ipv6.src')}]") + ":" + one(L, "tcp.srcport")
        dst_port = one(L, "tcp.dstport")
        syn, ack = truthy(one(L, "tcp.flags.syn")), truthy(one(L, "tcp.flags.ack"))
        if c["client"] is None:
            if syn and ack:
                c["server"], c["client"] = src, None
            else:
                c["client"] = src
                c["server_port"] = dst_port
        if c["server"] is None and c["client"] != src:
            c["server"] = src
        side = "client" if src == c["client"] else "server"
        fin, rst = truthy(one(L, "tcp.flags.fin")), truthy(one(L, "tcp.flags.reset"))
        length = int(one(L, "tcp.len") or 0)
        c["pkts"].append((t, side, length > 0, fin, rst))
        if fin:
            c["ends"].append(("FIN", side, t))
        if rst:
            c["ends"].append(("RST", side, t))
        htypes = L.get("tls.handshake.type", [])
        if "1" in htypes:
            c["sni"] = one(L, "tls.handshake.extensions_server_name")
            c["alpn"] = L.get("tls.handshake.extensions_alpn_str", [])
        if "2" in htypes:
            sv = L.get("tls.handshake.extensions.supported_version", [])
            rv = L.get("tls.record.version", [])
            c["version"] = VERSIONS.get(sv[-1] if sv else (rv[0] if rv else ""), "?")
            cs = one(L, "tls.handshake.ciphersuite")
            c["cipher"] = ciphers.get(int(cs, 16) if cs.startswith("0x") else int(cs), cs)
        for d in L.get("tls.alert_message.desc", []):
            if d == "0":
                c["notify"].setdefault(side, t)
        if c["version"] == "TLS 1.2" and not keys:
            # Without keys, a TLS 1.2 encrypted alert record counts as close_notify.
            if "21" in L.get("tls.record.content_type", []):
                c["notify"].setdefault(side, t)
        if one(L, "http.request.uri"):
            c["uri"] = one(L, "http.request.uri")
        if one(L, "http.response.code"):
            c["status"] = one(L, "http.response.code")
        codes = L.get("websocket.payload.close.status_code", [])
        reasons = L.get("websocket.payload.close.reason", [])
        for op in L.get("websocket.opcode", []):
            op = int(op)
            c["frames"][side][OPNAMES.get(op, f"op{op}")] += 1
            if op == 8:
                code = codes.pop(0) if codes else None
                reason = reasons.pop(0) if reasons else ""
                c["closes"].append((side, code, reason, t))

    print(f"capture {path}: {len(pkts)} packets, first at epoch {t0:.6f}"
          + (f", key log {keys}" if keys else ", no key log"))
    for s in sorted(conns):
        c = conns[s]
        rel = lambda t: f"{t - t0:.6f}"
        print(f"- stream {s}: {c['client']} -> {c['server']}, {len(c['pkts'])} packets, "
              f"{rel(c['pkts'][0][0])} to {rel(c['pkts'][-1][0])}")
        if c["version"] or c["sni"] is not None:
            print(f"  TLS: {c['version']}, {c['cipher']}, SNI {c['sni']!r}, ALPN {c['alpn']}")
        if c["uri"] or c["status"]:
            print(f"  upgrade: GET {c['uri']} -> {c['status']}")
        for side in ("client", "server"):
            fr = dict(c["frames"][side])
            if fr:
                print(f"  frames {side}: {fr}")
        for side, code, reason, t in c["closes"]:
            print(f"  close frame from {side}: {code} {reason!r} at {rel(t)}")
        for side in ("client", "server"):
            if side in c["notify"]:
                print(f"  close_notify from {side} at {rel(c['notify'][side])}")
        if c["ends"]:
            first = c["ends"][0]
            print(f"  first TCP end: {first[0]} by {first[1]} at {rel(first[2])}; all: "
                  + ", ".join(f"{k} {sd} {rel(t)}" for k, sd, t in c["ends"]))
        else:
            print("  TCP not ended")
        # The contract's final burst (encrypted connections): records, FIN, RST.
        ev = [(t, rec) for t, _, rec, fin, rst in c["pkts"] if rec or fin or rst]
        if c["ends"] and ev:
            i = len(ev) - 1
            while i > 0 and ev[i][0] - ev[i - 1][0] < 1.0:
                i -= 1
            burst = ev[i][0]
            before = [t for t, rec in ev[:i] if rec]
            start = before[-1] if before else c["pkts"][0][0]
            print(f"  final burst from {rel(burst)}: idle_s without keys {burst - start:.6f} "
                  f"(from {'the last record' if before else 'the first packet'} at {rel(start)})")


if __name__ == "__main__":
    main()
