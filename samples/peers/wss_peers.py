#!/usr/bin/env python3
"""Python peers over TLS (wss) for samples/wss.sh. Every client writes its
key log (SSLContext.keylog_filename) and sends the SNI "localhost" (the
certificate's name) while connecting to 127.0.0.1; no ALPN is offered.

    wss_peers.py unanswered --port P --cert CERT --key KEY --keys KEYS
        A python `websockets` client over TLS 1.3 against a hand-written TLS
        server (python ssl, blocking socket, the HTTP upgrade done by hand)
        that never answers a close frame: the server greets with a text
        frame, echoes the client's text, then, when the client's close frame
        (1000 "bye", sent after --idle seconds of silence) arrives, waits
        0.2 s and shuts TLS down (close_notify) and closes its socket,
        without a close frame. websockets reports 1006.

    wss_peers.py alpn --port P --cert CERT --key KEY --keys KEYS
        A python `websockets` client and server over TLS 1.3 in one process;
        the client's ClientHello offers the ALPN list ["h2", "http/1.1"] (the
        server selects none), so a tool that lists only the TLS connections
        offering no ALPN or only http/1.1 must be told the port. Two texts
        echoed, then a clean close 1000 "bye" from the client.

    wss_peers.py nginx-clients --port P --cert CERT --keys KEYS
        python `websockets` clients through a TLS-terminating proxy (nginx in
        samples/wss.sh): --idle N clients, started --stagger s apart, that
        upgrade and then send nothing until the proxy cuts them; --talk M
        clients that send a text every --interval s for --talk-seconds, then
        close with 1000 "done talking".

Keep-alive pings off, compression off (readable frames). Every wait bounded.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

T0 = time.monotonic()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(*args):
    print(f"[wss_peers {os.getpid()} +{time.monotonic() - T0:6.3f}s]", *args,
          file=sys.stderr, flush=True)


def client_context(cert, keys, tls13=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert)
    ctx.keylog_filename = keys
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


# --------------------------------------------------------------- unanswered

def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return buf


def read_frame(s):
    """One client frame: (opcode, unmasked payload)."""
    b0, b1 = read_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(s, 8))[0]
    mask = read_exact(s, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = read_exact(s, n)
    return b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


def server_frame(opcode, payload):
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def silent_tls_server(listener, sctx, ready):
    """Accept one connection, upgrade it by hand, never answer its close."""
    ready.set()
    raw, _ = listener.accept()
    # No Nagle: each sendall below its own segment, as tshark decodes best.
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = sctx.wrap_socket(raw, server_side=True)
    s.settimeout(10)
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = s.recv(4096)
        if not chunk:
            return
        req += chunk
    key = b""
    for line in req.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    time.sleep(0.05)
    s.sendall(server_frame(1, b"welcome, I never answer a close"))
    while True:
        opcode, payload = read_frame(s)
        if opcode == 1:
            s.sendall(server_frame(1, payload))
        elif opcode == 8:
            log(f"server: close frame {payload!r} received, not answering")
            break
    time.sleep(0.2)
    try:
        s.settimeout(2)
        s = s.unwrap()  # close_notify (and the client's, if it comes)
    except (OSError, ssl.SSLError) as e:
        log(f"server: unwrap: {e}")
    s.close()
    log("server: socket closed without a close frame")


async def unanswered_client(port, cert, keys, idle):
    ctx = client_context(cert, keys)
    async with connect(f"wss://127.0.0.1:{port}/unanswered", ssl=ctx,
                       server_hostname="localhost", ping_interval=None,
                       compression=None, close_timeout=10) as ws:
        greeting = await asyncio.wait_for(ws.recv(), 5)
        log(f"client: greeting {greeting!r}")
        await ws.send("hello, silent server")
        log(f"client: echo {await asyncio.wait_for(ws.recv(), 5)!r}")
        await asyncio.sleep(idle)
        await ws.close(1000, "bye")
    log(f"client: closed, code {ws.close_code} (1006: no close frame came)")


def run_unanswered(a):
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(a.cert, a.key)
    listener = socket.create_server(("127.0.0.1", a.port))
    ready = threading.Event()
    t = threading.Thread(target=silent_tls_server, args=(listener, sctx, ready), daemon=True)
    t.start()
    ready.wait(5)
    asyncio.run(asyncio.wait_for(unanswered_client(a.port, a.cert, a.keys, a.idle), 30))
    t.join(10)
    listener.close()


# --------------------------------------------------------------------- alpn

async def run_alpn(a):
    from websockets.asyncio.server import serve

    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(a.cert, a.key)
    cctx = client_context(a.cert, a.keys)
    cctx.set_alpn_protocols(["h2", "http/1.1"])
    async with serve(echo, "127.0.0.1", a.port, ssl=sctx, ping_interval=None,
                     compression=None):
        async with connect(f"wss://127.0.0.1:{a.port}/alpn", ssl=cctx,
                           server_hostname="localhost", ping_interval=None,
                           compression=None) as ws:
            for text in ["offered h2", "and http/1.1"]:
                await ws.send(text)
                await asyncio.wait_for(ws.recv(), 5)
            await asyncio.sleep(0.2)
            await ws.close(1000, "bye")
        log(f"alpn client: closed with {ws.close_code}")
        await asyncio.sleep(0.2)


# ------------------------------------------------------------ nginx clients

async def idle_client(u, ctx, i, delay, limit):
    await asyncio.sleep(delay)
    async with connect(u + f"?idle={i}", ssl=ctx, server_hostname="localhost",
                       ping_interval=None, compression=None, close_timeout=2) as ws:
        opened = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                async for _ in ws:
                    pass
        except ConnectionClosed:
            pass
        log(f"idle client {i}: cut after {time.monotonic() - opened:.3f} s, "
            f"close code {ws.close_code}")


async def talking_client(u, ctx, i, interval, seconds):
    async with connect(u + f"?talk={i}", ssl=ctx, server_hostname="localhost",
                       ping_interval=None, compression=None, close_timeout=5) as ws:
        n = round(seconds / interval)
        for k in range(n):
            await ws.send(f"talker {i} message {k}")
            await asyncio.wait_for(ws.recv(), 5)
            await asyncio.sleep(interval)
        await ws.close(code=1000, reason="done talking")
        log(f"talking client {i}: {n} messages, closed with {ws.close_code}")


async def run_nginx_clients(a):
    ctx = client_context(a.cert, a.keys)
    u = f"wss://127.0.0.1:{a.port}/ws"
    tasks = [idle_client(u, ctx, i, i * a.stagger, a.cut_within) for i in range(a.idle)]
    tasks += [talking_client(u, ctx, i, a.interval, a.talk_seconds) for i in range(a.talk)]
    await asyncio.wait_for(asyncio.gather(*tasks), 60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["unanswered", "alpn", "nginx-clients"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", help="unanswered: the server's private key")
    ap.add_argument("--keys", required=True, help="key log file to write")
    ap.add_argument("--idle", type=float, default=1.5,
                    help="unanswered: silence before the close; nginx-clients: idle clients")
    ap.add_argument("--talk", type=int, default=1)
    ap.add_argument("--stagger", type=float, default=0.7)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--talk-seconds", type=float, default=5.0)
    ap.add_argument("--cut-within", type=float, default=10.0)
    a = ap.parse_args()
    if a.role == "unanswered":
        run_unanswered(a)
    elif a.role == "alpn":
        asyncio.run(asyncio.wait_for(run_alpn(a), 30))
    else:
        a.idle = int(a.idle)
        asyncio.run(run_nginx_clients(a))


if __name__ == "__main__":
    main()
