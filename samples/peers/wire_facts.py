#!/usr/bin/env python3
"""Describe, per WebSocket connection, what is on the wire of sample captures.

    wire_facts.py [--close-timeout 5] CAPTURE [CAPTURE...]   (one capture per
    argument; join rotated files with '+': rotated-1.pcap+rotated-2.pcap)

Uses tshark only (independent of wsclose), and prints a markdown table: the
close frames (who, code, reason, when), the answer delay, the idle time before
the close, the first FIN/RST, and the outcome that the wsclose contract's
rules give for those facts. regen.sh writes its output to samples/WIRE-FACTS.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

FIELDS = [
    "frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ipv6.src",
    "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin",
    "tcp.flags.reset", "http.request.uri", "http.response.code",
    "http.sec_websocket_extensions",
]
OPNAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def tshark_json(path, args):
    out = subprocess.run(["tshark", "-r", path, *args, "-T", "json",
                          *sum((["-e", f] for f in FIELDS), [])],
                         check=True, capture_output=True)
    return json.loads(out.stdout or b"[]")


def load(path):
    # Decode every listening port (dst of a SYN) as HTTP so that tshark sees
    # the upgrade and then decodes WebSocket frames.
    out = subprocess.run(["tshark", "-r", path, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0",
                          "-T", "fields", "-e", "tcp.dstport"],
                         check=True, capture_output=True, text=True).stdout.split()
    dec = []
    for p in sorted(set(out)):
        dec += ["-d", f"tcp.port=={p},http"]
    pkts = tshark_json(path, dec)
    # Second pass: the WebSocket frames of each packet, in order, as full
    # objects (a packet carrying several frames has several "websocket" keys).
    out = subprocess.run(["tshark", "-r", path, *dec, "-Y", "websocket", "-T", "json",
                          "-J", "frame websocket"], check=True, capture_output=True)
    frames = {}
    for pk in json.loads(out.stdout or b"[]", object_pairs_hook=lambda kv: kv):
        layer_pairs = dict(dict(pk)["_source"])["layers"]
        number = dict(dict(layer_pairs)["frame"])["frame.number"]
        frames[number] = [dict(v) for k, v in layer_pairs if k == "websocket"]
    for p in pkts:
        L = p["_source"]["layers"]
        L["ws_frames"] = frames.get(first(L, "frame.number"), [])
    return pkts


def ws_frame(obj):
    """(opcode, fin, payload length, close code or None, close reason or None)"""
    n = int(obj.get("websocket.payload_length", "0"))
    if n == 126:
        n = int(obj["websocket.payload_length_ext_16"])
    elif n == 127:
        n = int(obj["websocket.payload_length_ext_64"])
    code = reason = None
    payload = obj.get("websocket.payload")
    if isinstance(payload, list):
        payload = dict(payload)
        close = payload.get("websocket.payload.close")
        if close is not None:
            close = dict(close) if isinstance(close, list) else {}
            if "websocket.payload.close.status_code" in close:
                code = int(close["websocket.payload.close.status_code"])
                reason = close.get("websocket.payload.close.reason", "")
    return int(obj["websocket.opcode"]), obj.get("websocket.fin") == "1", n, code, reason


def first(layers, key, default=None):
    v = layers.get(key)
    return v[0] if v else default


def describe(name, path, close_timeout):
    pkts = load(path)
    if not pkts:
        return [], 0.0
    end_ts = max(float(first(p["_source"]["layers"], "frame.time_epoch")) for p in pkts)
    conns = {}
    order = []
    for p in pkts:
        L = p["_source"]["layers"]
        ts = float(first(L, "frame.time_epoch"))
        stream = first(L, "tcp.stream")
        if stream is None:
            continue
        src = first(L, "ip.src") or f"[{first(L, 'ipv6.src')}]"
        sport, dport = first(L, "tcp.srcport"), first(L, "tcp.dstport")
        c = conns.get(stream)
        if c is None:
            c = conns[stream] = {
                "first_ts": ts, "client": None, "server": None, "path": None,
                "status": None, "resp_ts": None, "ext": None,
                "frames": {"client": Counter(), "server": Counter()},
                "bytes": {"client": 0, "server": 0},
                "closes": [], "last_frame_ts": None, "last_before_close": None,
                "tcp_end": None, "fins": [],
            }
            order.append(stream)
        here = f"{src}:{sport}"
        if first(L, "tcp.flags.syn") in ("1", "True") and first(L, "tcp.flags.ack") in ("0", "False"):
            c["client"], c["server"] = here, None
            c["client_port"] = sport
        if c.get("client_port") is None:
            c["client_port"] = sport if int(sport) > int(dport) else dport
        side = "client" if sport == c["client_port"] else "server"
        if first(L, "http.request.uri") is not None and c["path"] is None:
            c["path"] = first(L, "http.request.uri")
        if first(L, "http.response.code") is not None and c["status"] is None:
            c["status"] = int(first(L, "http.response.code"))
            c["resp_ts"] = ts
            c["ext"] = first(L, "http.sec_websocket_extensions")
        for obj in L["ws_frames"]:
            op, _fin, n, code, reason = ws_frame(obj)
            c["frames"][side][OPNAMES.get(op, f"op{op}")] += 1
            c["bytes"][side] += n
            if op == 8:
                if not c["closes"]:
                    c["last_before_close"] = c["last_frame_ts"]
                c["closes"].append((side, ts, code, reason))
            c["last_frame_ts"] = ts
        fin = first(L, "tcp.flags.fin") in ("1", "True")
        rst = first(L, "tcp.flags.reset") in ("1", "True")
        if (fin or rst) and c["tcp_end"] is None:
            c["tcp_end"] = ("RST" if rst else "FIN", side, ts)
        if fin or rst:
            c["fins"].append(("RST" if rst else "FIN", side, ts))

    rows = []
    for n, s in enumerate(order, 1):
        c = conns[s]
        if c["path"] is None:
            continue
        rows.append(row(name, n, c, end_ts, close_timeout))
    return rows, end_ts


def fmt_s(x):
    return "-" if x is None else f"{x:.3f} s"


def row(name, n, c, end_ts, T):
    closes = c["closes"]
    by_side = {}
    for side, ts, code, reason in closes:
        by_side.setdefault(side, (ts, code, reason))
    ext = "deflate" if c["ext"] and "permessage-deflate" in c["ext"] else "-"
    fr = []
    for side in ("client", "server"):
        cnt = c["frames"][side]
        fr.append((" ".join(f"{k}:{v}" for k, v in sorted(cnt.items())) or "none")
                  + f" ({c['bytes'][side]} B)")
    end = c["tcp_end"]
    findings = []
    if c["status"] != 101:
        outcome = "rejected" if end is not None else "open"
        close_txt = "-"
        answer = "-"
        idle = None
        if end is not None:
            findings.append("handshake_rejected")
    elif not closes:
        outcome = "abnormal" if end else "open"
        close_txt = "none"
        answer = "-"
        ref = c["last_frame_ts"] or c["resp_ts"]
        idle = (end[2] - ref) if end else None
        if end:
            findings.append(f"abnormal_closure({end[1]})")
    else:
        side0, ts0, code0, reason0 = closes[0]
        other = "server" if side0 == "client" else "client"
        close_txt = f"{side0} {code0} {reason0!r}" if code0 is not None else f"{side0} (no code)"
        deadline = ts0 + T
        ans = by_side.get(other)
        ref = c["last_before_close"] or c["resp_ts"]
        idle = ts0 - ref
        if ans:
            answer = f"{other} {ans[1]} {ans[2]!r} after {ans[0] - ts0:.4f} s" if ans[1] is not None \
                else f"{other} (no code) after {ans[0] - ts0:.4f} s"
        else:
            answer = "never"
        if ans and ans[0] <= deadline:
            outcome = "clean"
        elif end and end[2] < deadline:
            outcome = "unanswered"
            findings.append(f"unanswered_close({other})")
        elif end_ts >= deadline:
            outcome = "timeout"
            findings.append(f"close_timeout({other})")
        else:
            outcome = "pending"
        for side, (_, code, _) in sorted(by_side.items()):
            if code in (1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014):
                findings.append(f"error_close_code({side} {code})")
        rsts = [f for f in c["fins"] if f[0] == "RST" and f[2] >= ts0]
        if rsts:
            findings.append(f"reset_after_close({rsts[0][1]})")
        if len(by_side) == 2 and end and end[0] == "FIN" and end[1] == "client" \
                and end[2] >= max(v[0] for v in by_side.values()):
            findings.append("client_closed_tcp_first")
    if end:
        t0 = closes[0][1] if closes else (c["last_frame_ts"] or c["resp_ts"] or c["first_ts"])
        tcp_txt = f"{end[0]} by {end[1]} (+{end[2] - t0:.4f} s)"
    else:
        tcp_txt = "none"
    return {
        "file": name, "n": n, "client": c["client"], "path": c["path"],
        "status": c["status"], "ext": ext, "frames_c": fr[0], "frames_s": fr[1],
        "close": close_txt, "answer": answer, "idle": fmt_s(idle), "tcp": tcp_txt,
        "outcome": outcome, "findings": ", ".join(findings) or "-",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--close-timeout", type=float, default=5.0)
    ap.add_argument("--summary-only", action="store_true",
                    help="print only outcome counts (for large captures)")
    ap.add_argument("captures", nargs="+")
    a = ap.parse_args()
    allrows = []
    for arg in a.captures:
        parts = arg.split("+")
        name = ", ".join(os.path.basename(p) for p in parts)
        if len(parts) > 1:
            with tempfile.TemporaryDirectory() as d:
                merged = os.path.join(d, "merged.pcap")
                subprocess.run(["mergecap", "-F", "pcap", "-w", merged, *parts], check=True)
                rows, _ = describe(name, merged, a.close_timeout)
        else:
            rows, _ = describe(name, arg, a.close_timeout)
        allrows += rows
    if a.summary_only:
        oc = Counter(r["outcome"] for r in allrows)
        fc = Counter(f.split("(")[0] for r in allrows for f in r["findings"].split(", ") if f != "-")
        print(f"connections: {len(allrows)}; outcomes: {dict(sorted(oc.items()))}; "
              f"findings: {dict(sorted(fc.items()))}")
        return
    cols = [("file", "file"), ("n", "#"), ("client", "client"), ("path", "path"),
            ("status", "status"), ("ext", "ext"), ("frames_c", "client frames (payload bytes)"),
            ("frames_s", "server frames (payload bytes)"), ("idle", "idle before close"),
            ("close", "first close frame"), ("answer", "answer"),
            ("tcp", "first FIN/RST (after first close)"), ("outcome", "outcome (T=5 s)"),
            ("findings", "findings")]
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in allrows:
        print("| " + " | ".join(str(r[k]).replace("|", "\\|") for k, _ in cols) + " |")


if __name__ == "__main__":
    main()
