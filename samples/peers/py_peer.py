#!/usr/bin/env python3
"""Python peers for the wsclose sample captures (see samples/regen.sh).

    py_peer.py server    SCENARIO --host H --port P   python `websockets` server
    py_peer.py client    SCENARIO --host H --port P   python `websockets` client
    py_peer.py rawserver SCENARIO --host H --port P   hand-written server: does the
                                                      HTTP upgrade itself, then
                                                      misbehaves at close time

Every peer exits on its own: servers after the expected number of connections
(--conns) or after --max-seconds at the latest, clients when their scenario is
done (all waits are bounded).
"""

import argparse
import asyncio
import base64
import hashlib
import http
import os
import random
import socket
import struct
import sys
import time
import math

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

UTF8_REASON = "délai dépassé ✓ 再见"


def log(*args):
    print(f"[py {os.getpid()}]", *args, file=sys.stderr, flush=True)


def uri(host, port, path="/"):
    h = f"[{host}]" if ":" in host else host
    return f"ws://{h}:{port}{path}"


# --------------------------------------------------------------------------
# websockets server
# --------------------------------------------------------------------------

async def run_server(scenario, host, port, conns, max_seconds):
    done = asyncio.Event()
    finished = 0

    def one_finished():
        nonlocal finished
        finished += 1
        if finished >= conns:
            done.set()

    def process_request(connection, request):
        # Scenario "rejected" (and path /reject in "many"): refuse the upgrade.
        if scenario == "rejected" or request.path == "/reject":
            one_finished()
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Forbidden: no entry\n")
        return None

    async def handler(ws):
        path = ws.request.path
        try:
            if scenario == "server-close-utf8":
                # Echo two messages, then close with a 4000-range code and a
                # multi-byte UTF-8 reason.
                for _ in range(2):
                    msg = await ws.recv()
                    await ws.send(msg)
                await asyncio.sleep(0.3)
                await ws.close(code=4001, reason=UTF8_REASON)
            elif path == "/fragment":
                msg = await ws.recv()
                # A fragmented text message: 3 frames (text + 2 continuations).
                await ws.send(["frag-1 ", "frag-2 ", "frag-3 " + msg])
                async for msg in ws:
                    await ws.send(msg)
            elif path == "/close-1011":
                msg = await ws.recv()
                await ws.send(msg)
                await asyncio.sleep(0.2)
                await ws.close(code=1011, reason="internal error")
            elif path == "/server-close":
                n = 0
                async for msg in ws:
                    await ws.send(msg)
                    n += 1
                    if n >= 3:
                        break
                await ws.close(code=1000, reason="done")
            else:  # echo
                async for msg in ws:
                    await ws.send(msg)
        except ConnectionClosed:
            pass
        finally:
            one_finished()

    async with serve(
        handler,
        host,
        port,
        process_request=process_request,
        ping_interval=None,
        close_timeout=10,
    ):
        log(f"server {scenario} listening on {host}:{port}")
        try:
            await asyncio.wait_for(done.wait(), max_seconds)
        except TimeoutError:
            log("server: max lifetime reached")
        # Let the last connection finish its TCP closing before we exit.
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------
# websockets client
# --------------------------------------------------------------------------

async def client_echo(u, n=3, close_code=1000, close_reason="", idle=0.3, **kw):
    async with connect(u, ping_interval=None, **kw) as ws:
        for i in range(n):
            await ws.send(f"hello {i}")
            await ws.recv()
        await asyncio.sleep(idle)
        await ws.close(code=close_code, reason=close_reason)


async def client_until_closed(ws, timeout=15):
    """Wait (bounded) for the server to close the connection, echoing nothing."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass


async def run_client(scenario, host, port):
    if scenario in ("clean-client-close", "clean"):
        await client_echo(uri(host, port, "/chat"), n=3, close_reason="bye")
    elif scenario == "server-close-utf8":
        async with connect(uri(host, port, "/utf8"), ping_interval=None) as ws:
            for i in range(2):
                await ws.send(f"message {i} ✓")
                await ws.recv()
            await client_until_closed(ws)
            log("closed by server:", ws.close_code, ws.close_reason)
    elif scenario == "rejected":
        try:
            async with connect(uri(host, port, "/private"), ping_interval=None):
                pass
        except InvalidStatus as exc:
            log("rejected as expected:", exc)
    elif scenario == "unanswered":
        # The raw server greets us, we close, it never answers our close frame.
        async with connect(uri(host, port, "/unanswered"), ping_interval=None,
                           compression=None, close_timeout=10) as ws:
            log("got", await ws.recv())
            await ws.send("hello raw server")
            await asyncio.sleep(0.3)
            try:
                await ws.close(code=1000, reason="bye")
            except ConnectionClosed:
                pass
            log("close result:", ws.close_code, ws.close_reason)
    elif scenario == "close-timeout":
        # The raw server keeps TCP open and silent for 7 s after our close frame;
        # websockets' close_timeout is longer (10 s) so the raw server ends it.
        async with connect(uri(host, port, "/silent"), ping_interval=None,
                           compression=None, close_timeout=10) as ws:
            log("got", await ws.recv())
            await ws.send("hello silent server")
            await asyncio.sleep(0.3)
            try:
                await ws.close(code=1000, reason="bye")
            except ConnectionClosed:
                pass
            log("close result:", ws.close_code, ws.close_reason)
    elif scenario == "rotated":
        # One connection spread over several seconds, for tcpdump -G 1: each
        # message goes out just after a second boundary, and so does the close,
        # so that the whole closing lands in the last file.
        async def after_next_second():
            loop_now = time.time()
            await asyncio.sleep(math.floor(loop_now) + 1.2 - loop_now)

        async with connect(uri(host, port, "/rotated"), ping_interval=None,
                           compression=None) as ws:
            for i in range(3):
                await after_next_second()
                await ws.send(f"rotated message {i} " + "x" * 200)
                await ws.recv()
            await after_next_second()
            await ws.close(code=1000, reason="end of rotated capture")
    elif scenario == "many":
        await run_many_py(host, port)
    else:
        raise SystemExit(f"unknown client scenario {scenario}")


async def run_many_py(host, port):
    """Python side of many-connections.pcap. port = node ws server, port+1 =
    python websockets server, port+2 = raw server."""
    node, py, raw = port, port + 1, port + 2
    # 1. py -> node ws, permessage-deflate (node server has it enabled), texts,
    #    client close 1000.
    await client_echo(uri(host, node, "/echo"), n=3, close_reason="py bye")
    # 2. py -> py, compression off, ping/pong, client close 1000.
    async with connect(uri(host, py, "/echo"), ping_interval=None, compression=None) as ws:
        for i in range(2):
            pong = await ws.ping(f"ping {i}".encode())
            await asyncio.wait_for(pong, 5)
            await ws.send(f"text {i}")
            await ws.recv()
        await asyncio.sleep(0.2)
        await ws.close()
    # 3. py -> py /fragment: server sends a fragmented text message;
    #    client sends a fragmented binary message; deflate on.
    async with connect(uri(host, py, "/fragment"), ping_interval=None) as ws:
        await ws.send("go")
        log("fragmented from server:", await ws.recv())
        await ws.send([b"\x00\x01" * 50, b"\x02\x03" * 50])
        await ws.recv()
        await ws.close(code=1000, reason="")
    # 4. py -> py, close code 3000 (IANA-registered range), binary messages.
    async with connect(uri(host, py, "/echo"), ping_interval=None, compression=None) as ws:
        await ws.send(os.urandom(64))
        await ws.recv()
        await ws.close(code=3000, reason="registered code")
    # 5. py -> raw /rst: raw server resets the TCP connection (SO_LINGER 0)
    #    after reading our close frame.
    async with connect(uri(host, raw, "/rst"), ping_interval=None, compression=None) as ws:
        await ws.recv()
        try:
            await ws.close(code=1000, reason="bye rst")
        except ConnectionClosed:
            pass
    # 6. py -> py, close reason 1001 from the client + 2 concurrent connections
    async def conc(i):
        await client_echo(uri(host, py, f"/echo?c={i}"), n=2, close_code=1001,
                          close_reason=f"going away {i}", idle=0.1)
    await asyncio.gather(conc(1), conc(2))
    # 7. py -> node ws /reject: node's verifyClient answers 401.
    try:
        async with connect(uri(host, node, "/reject"), ping_interval=None):
            pass
    except InvalidStatus as exc:
        log("rejected as expected:", exc)


# --------------------------------------------------------------------------
# hand-written server (no library): for peers that do not answer a close frame
# --------------------------------------------------------------------------

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode, payload):
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return hdr + payload


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    opcode = b0 & 0x0F
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i % 4]
    return opcode, bytes(data)


async def run_rawserver(scenario, host, port, conns, max_seconds):
    done = asyncio.Event()
    finished = 0

    async def handle(reader, writer):
        nonlocal finished
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split()[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            key = headers["sec-websocket-key"]
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\n"
                    "Server: wsclose-sample-rawserver\r\n"
                    "\r\n"
                ).encode()
            )
            writer.write(frame(0x1, b"hello from raw server"))
            await writer.drain()
            mode = scenario if scenario != "many" else path.strip("/").split("?")[0]
            while True:
                opcode, payload = await asyncio.wait_for(read_frame(reader), 20)
                if opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    log(f"raw server got close frame code={code} on {path}, mode {mode}")
                    break
                if opcode == 0x9:  # ping -> pong
                    writer.write(frame(0xA, payload))
                elif opcode in (0x1, 0x2):
                    writer.write(frame(opcode, payload))  # echo
                await writer.drain()
            if mode in ("unanswered", "fin"):
                # Never answer the close frame: just close the socket (FIN).
                await asyncio.sleep(0.2)
                writer.close()
            elif mode in ("close-timeout", "silent"):
                # Keep TCP open and say nothing for 7 s, then close (FIN).
                await asyncio.sleep(7)
                writer.close()
            elif mode == "rst":
                # Never answer: abort with RST (SO_LINGER on, timeout 0).
                await asyncio.sleep(0.2)
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            log("raw server:", type(exc).__name__, exc)
            writer.close()
        finally:
            finished += 1
            if finished >= conns:
                done.set()

    server = await asyncio.start_server(handle, host, port)
    log(f"rawserver {scenario} listening on {host}:{port}")
    async with server:
        try:
            await asyncio.wait_for(done.wait(), max_seconds)
        except TimeoutError:
            log("rawserver: max lifetime reached")
        await asyncio.sleep(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["server", "client", "rawserver"])
    ap.add_argument("scenario")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1, help="servers: exit after N connections")
    ap.add_argument("--max-seconds", type=float, default=60)
    a = ap.parse_args()
    random.seed(6455)
    if a.role == "server":
        coro = run_server(a.scenario, a.host, a.port, a.conns, a.max_seconds)
    elif a.role == "rawserver":
        coro = run_rawserver(a.scenario, a.host, a.port, a.conns, a.max_seconds)
    else:
        coro = asyncio.wait_for(run_client(a.scenario, a.host, a.port), a.max_seconds)
    asyncio.run(coro)


if __name__ == "__main__":
    main()
