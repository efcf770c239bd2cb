#!/usr/bin/env python3
"""Regenerates the seed corpora of fuzz/corpus/ from the bundled samples.

Usage: python3 fuzz/seeds.py [CRAFTED_DIR]

* pipeline: samples/*.pcap and *.pcapng (not large.pcap; many-connections.pcap
  cut to its first 60 KiB, under -max_len) plus a few crafted captures from
  CRAFTED_DIR (made by `WSCLOSE_KEEP_CAPTURES=DIR cargo test --test 'crafted*'`);
* frame_header: every non-HTTP TCP payload of the samples, each direction's
  frame stream joined, and the RFC 6455 5.7 example frames;
* upgrade: every HTTP request/response head of the samples;
* close_payload: every close frame's unmasked payload, plus edge cases;
* reassembly: a few hand-made segment sequences (layout: see
  fuzz_targets/reassembly.rs);
* messages: a few hand-made text/frame inputs (layout: see
  fuzz_targets/messages.rs).

Needs tshark. Files are named by content hash, like libFuzzer's.
"""
import glob
import hashlib
import os
import shutil
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
CRAFTED_PICK = [
    "every_outcome_in_one_capture", "fragmented_close_frame", "sequence_wraparound",
    "out_of_order_segments", "overlapping_segments", "capture_gap", "tiny_segments",
    "pcapng_with_two_link_types.pcapng", "linux_sll2_link_type.", "raw_ip_link_type.",
    "midstream_client_identified_by_mask", "malformed_frame", "permessage_deflate_rsv1",
    "time_going_backwards", "reused_four_tuple", "truncated_last_record",
    "sources_fields_and_non_tcp_packets", "retransmissions", "frame_length_forms",
    "close_payloads_of_zero_and_one_byte", "masking_violations", "rejected_by_a_403",
]


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def payloads(path):
    """(stream id, src port, payload bytes) of every TCP segment with data."""
    out = subprocess.run(
        ["tshark", "-r", path, "-Y", "tcp.len>0", "-T", "fields",
         "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.payload"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[2]:
            yield parts[0], parts[1], bytes.fromhex(parts[2].replace(":", ""))


def frames(stream):
    """Yields (opcode, unmasked payload) of the complete frames of a stream."""
    i = 0
    while i + 2 <= len(stream):
        b0, b1 = stream[i], stream[i + 1]
        n, j = b1 & 0x7f, i + 2
        if n == 126:
            n, j = struct.unpack(">H", stream[j:j + 2])[0], j + 2
        elif n == 127:
            n, j = struct.unpack(">Q", stream[j:j + 8])[0], j + 8
        mask = None
        if b1 & 0x80:
            mask, j = stream[j:j + 4], j + 4
        if j + n > len(stream):
            return
        p = bytearray(stream[j:j + n])
        if mask:
            for k in range(len(p)):
                p[k] ^= mask[k % 4]
        yield b0 & 0xf, bytes(p)
        i = j + n


def main():
    samples = [p for p in sorted(glob.glob(os.path.join(ROOT, "samples", "*.pcap*")))
               if not p.endswith("large.pcap")]
    for p in samples:
        data = open(p, "rb").read()
        put("pipeline", data[:60 * 1024])
        streams = {}
        for sid, port, pl in payloads(p):
            if pl.startswith((b"GET ", b"HTTP/")):
                put("upgrade", pl)
                continue
            if len(pl) <= 4096:
                put("frame_header", pl)
            streams.setdefault((sid, port), bytearray()).extend(pl)
        for s in streams.values():
            put("frame_header", bytes(s[:8192]))
            for op, p in frames(bytes(s)):
                if op == 8:
                    put("close_payload", p)
    if len(sys.argv) > 1:
        for name in sorted(os.listdir(sys.argv[1])):
            if any(k in name for k in CRAFTED_PICK):
                put("pipeline", open(os.path.join(sys.argv[1], name), "rb").read()[:60 * 1024])

    # RFC 6455 5.7 examples and length forms.
    for f in [
        "810548656c6c6f",                      # unmasked text "Hello"
        "818537fa213d7f9f4d5158",              # masked text "Hello"
        "010348656c" "80026c6f",               # fragmented text
        "890548656c6c6f",                      # ping
        "8a8537fa213d7f9f4d5158",              # masked pong
        "827e0100" + "00" * 256,               # 256-byte binary
        "827f0000000000010000",                # 64 KiB binary header
        "82ff000000000001000001020304",        # 64-bit length, masked
        "827f8000000000000000",                # top bit set: malformed
        "880203e8", "8800", "880103",          # close forms
        "8882010203040210",                    # masked close 1000
    ]:
        put("frame_header", bytes.fromhex(f))

    for p in [b"", b"\x03", b"\x03\xe8", b"\x03\xe9going away", b"\x0f\xa1\xffa",
              b"\x03\xed", b"\x13\x88", b"\x03\xe8" + "é".encode() * 61 + b"\xc3"]:
        put("close_payload", p)

    # Heads near MAX_HEAD_LEN (16 KiB).
    put("upgrade", b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nX-Long: "
        + b"a" * 16300 + b"\r\n\r\n")
    put("upgrade", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Long: "
        + b"b" * 16330 + b"\r\n\r\n")

    # Reassembly: limits byte, stop byte, max-flows byte, then segments
    # (flags, mode, operands..., ts step).
    def seg(flags, mode, *ops):
        return bytes([flags, mode, *ops, 17])
    C2S, S2C = 0b0100, 0b0001
    put("reassembly", bytes([0x00, 0, 7])
        + seg(C2S | 0x10, 0 | (0 << 3), 0, 0)            # SYN
        + seg(S2C | 0x30, 0 | (0 << 3), 0, 1)            # SYN-ACK
        + seg(C2S | 0x20, 0 | (10 << 3), 1, 1)           # data
        + seg(C2S | 0x20, 0 | (10 << 3), 20, 1)          # out of order
        + seg(C2S | 0x20, 0 | (10 << 3), 0xf6, 1)        # fills the hole
        + seg(S2C | 0x60, 0 | (5 << 3), 0, 0)            # FIN with data
        + seg(C2S | 0x60, 0, 0, 0))                      # FIN
    put("reassembly", bytes([0x01, 3, 1])
        + seg(C2S, 3 | (31 << 3), 4, 0)                  # near 2^32, 4 KiB
        + seg(C2S, 1 | (20 << 3), 2, 0)                  # far ahead
        + seg(S2C | 0x20, 0, 0, 0x7f)                    # ack past the hole
        + seg(0b1000 | 0x80, 0, 0, 0))                   # RST on another flow
    put("reassembly", bytes([0x83, 0, 2])
        + b"".join(seg(C2S | 0x20, 2 | (7 << 3), *struct.pack("<I", (0xfffffff0 + 9 * k) & 0xffffffff), 0)
                   for k in range(6))
        + seg(C2S | 0x10, 0, 0, 0))

    messages_seeds()


def messages_seeds():
    """Layout in fuzz_targets/messages.rs: a UTF-8 text with its cuts, the
    stream cuts and the gap, then frames."""
    TEXT, CONT, BIN, PING, PONG, CLOSE, RSVD = 0, 1, 2, 3, 6, 0x26, 7
    FIN, MASK, RSV1 = 0x08, 0x10, 0x20

    def utf8(text, *cuts):
        return bytes([len(text), len(cuts)]) + bytes(cuts) + text

    def stream(stride, cuts=(), gap=(0, 0, 0, 0)):
        return (bytes([stride, len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts)
                + bytes(gap))

    def frame(c, payload, mask=b""):
        return bytes([c, len(payload)]) + payload + mask

    def long(c, n, pattern, mask=b""):
        # Length form 3: a payload of n bytes repeating the pattern.
        return (bytes([c | 0xC0]) + struct.pack("<H", n) + bytes([len(pattern) - 1])
                + pattern + mask)

    euro, clef = "€".encode(), "𝄞".encode()
    put("messages", utf8("héllo €uro 𝄞".encode(), 2, 7, 8)
        + stream(3, (5, 9))
        + frame(TEXT, euro[:1])                          # "€" across frames
        + frame(PING | FIN | MASK, b"hb", b"\x01\x02\x03\x04")
        + frame(CONT | FIN | MASK, euro[1:], b"\x37\xfa\x21\x3d")
        + frame(BIN | FIN, b"\xff\xfe")
        + frame(CLOSE | FIN | MASK, b"\x03\xe8bye", b"\x09\x08\x07\x06"))
    put("messages", utf8(b"\xed\xa0\x80 \xf0\x9f\x98", 1, 2)
        + stream(1)
        + frame(TEXT, b"ok \xed")                      # surrogate across frames
        + frame(CONT, b"\xa0")
        + frame(CONT | FIN, b"\x80")
        + frame(TEXT | FIN | MASK, clef[:3], b"\xaa\xbb\xcc\xdd")  # truncated at FIN
        + frame(TEXT | FIN | RSV1, b"\xff\xff")         # compressed: not judged
        + frame(TEXT | FIN | 0x40, b"short, 16-bit form")
        + frame(BIN | FIN | 0x80, b"short, 64-bit form"))
    put("messages", utf8("κόσμε".encode(), 3)
        + stream(7, (1, 2, 3))
        + frame(CONT | FIN, b"orphan")                  # nothing in progress
        + frame(TEXT, b"first ")
        + frame(BIN | FIN, b"interleaved")              # while "first " is open
        + frame(CONT, b"orphan again")
        + frame(CONT | FIN, b"")
        + frame(RSVD, b"??")                            # opcode 0x3
        + frame(RSVD | RSV1 | FIN, b"")                 # opcode 0xB
        + frame(PONG | FIN, b""))
    put("messages", utf8(b"\xc0\xaf\xe0\x80\xaf\xf4\x90\x80\x80")
        + stream(60, (300, 301, 700), (1, 0, 40, 100))  # a gap in frame 0
        + long(TEXT | MASK, 1000, euro, b"\x11\x22\x33\x44")
        + long(CONT | FIN | MASK, 600, clef, b"\x55\x66\x77\x88")
        + long(TEXT | FIN | MASK, 777, "é".encode() + b"x", b"\x99\xaa\xbb\xcc")
        + long(TEXT | FIN, 300, b"\xe2\x82"))           # invalid, unmasked


if __name__ == "__main__":
    main()
