#!/usr/bin/env python3
"""Python peers for samples/middlebox.sh: WebSocket connections through a
proxy that cuts idle connections.

    proxy_clients.py server  --host H --port P [--conns N]
        python `websockets` echo server (the proxy's upstream); exits after N
        connections have ended, or after --max-seconds.
    proxy_clients.py clients --host H --port P [--idle N] [--talk M]
        N idle clients that upgrade and then send nothing (the proxy cuts
        them), started --stagger seconds apart; M talking clients that send a
        text message every --interval seconds for --talk-seconds, then close
        cleanly with 1000. All at once; exits when every client is done.

Keep-alive pings are off everywhere (`ping_interval=None`), so the idle
clients are really idle and only scripted frames appear on the wire.
Compression is off so that the text messages stay readable in the capture.
Every wait is bounded.
"""

import argparse
import asyncio
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

T0 = time.monotonic()


def log(*args):
    print(f"[proxy_clients {os.getpid()} +{time.monotonic() - T0:6.3f}s]", *args,
          file=sys.stderr, flush=True)


def uri(host, port, path="/"):
    h = f"[{host}]" if ":" in host else host
    return f"ws://{h}:{port}{path}"


async def run_server(host, port, conns, max_seconds):
    done = asyncio.Event()
    finished = 0

    async def handler(ws):
        nonlocal finished
        try:
            async for msg in ws:
                await ws.send(msg)
        except ConnectionClosed:
            pass
        finally:
            finished += 1
            log(f"upstream connection {finished} ended: close code {ws.close_code}")
            if finished >= conns:
                done.set()

    async with serve(handler, host, port, ping_interval=None, compression=None,
                     close_timeout=10):
        log(f"server listening on {host}:{port}")
        try:
            await asyncio.wait_for(done.wait(), max_seconds)
        except TimeoutError:
            log("server: max lifetime reached")
        # Let the last connection finish its TCP closing before we exit.
        await asyncio.sleep(0.5)


async def idle_client(u, i, delay, limit):
    """Upgrade, send nothing, wait for the proxy to cut the connection."""
    await asyncio.sleep(delay)
    async with connect(u + f"?idle={i}", ping_interval=None, compression=None,
                       close_timeout=2) as ws:
        opened = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                async for _ in ws:
                    pass
        except ConnectionClosed:
            pass
        except TimeoutError:
            log(f"idle client {i}: not cut within {limit} s")
            raise
        log(f"idle client {i}: cut after {time.monotonic() - opened:.3f} s, "
            f"close code {ws.close_code} (1006: no close frame)")


async def talking_client(u, i, interval, seconds):
    """A text message every `interval` s, echoed; then a clean close 1000."""
    async with connect(u + f"?talk={i}", ping_interval=None, compression=None,
                       close_timeout=5) as ws:
        n = round(seconds / interval)
        for k in range(n):
            await ws.send(f"talker {i} message {k}")
            await asyncio.wait_for(ws.recv(), 5)
            await asyncio.sleep(interval)
        await ws.close(code=1000, reason="done talking")
        log(f"talking client {i}: {n} messages, closed with {ws.close_code}")


async def run_clients(host, port, idle, talk, stagger, interval, talk_seconds, limit):
    u = uri(host, port, "/ws")
    tasks = [idle_client(u, i, i * stagger, limit) for i in range(idle)]
    tasks += [talking_client(u, i, interval, talk_seconds) for i in range(talk)]
    await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["server", "clients"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1, help="server: exit after N connections")
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--idle", type=int, default=4, help="clients: idle clients")
    ap.add_argument("--talk", type=int, default=2, help="clients: talking clients")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="clients: seconds between the idle clients' starts")
    ap.add_argument("--interval", type=float, default=0.5,
                    help="clients: seconds between a talker's messages")
    ap.add_argument("--talk-seconds", type=float, default=5.0,
                    help="clients: how long the talkers talk")
    ap.add_argument("--cut-within", type=float, default=30.0,
                    help="clients: an idle client not cut within this fails")
    a = ap.parse_args()
    if a.role == "server":
        coro = run_server(a.host, a.port, a.conns, a.max_seconds)
    else:
        coro = asyncio.wait_for(
            run_clients(a.host, a.port, a.idle, a.talk, a.stagger, a.interval,
                        a.talk_seconds, a.cut_within),
            a.max_seconds)
    asyncio.run(coro)


if __name__ == "__main__":
    main()
